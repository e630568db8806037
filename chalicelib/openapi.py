"""The OpenAPI 3 document, generated from the pydantic shapes in schemas.py.

tests/unit/test_openapi.py checks that every Chalice route is documented here and vice versa, so the
document cannot drift from the routing table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel

from chalicelib import schemas
from chalicelib.domain import ID_PATTERN  # every id in a path is ours; other values are 404
from chalicelib.payment_schemas import payment_operations

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    auth: str = "none"  # none | optional | required | staff
    errors: tuple[int, ...] = field(default=())


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/health", "Health: whether the tables answer", schemas.HealthOut, errors=(503,)),
    Operation("GET", "/api/schema", "This OpenAPI document", None),
    Operation(
        "POST",
        "/api/auth/register",
        "Create an account",
        schemas.UserOut,
        201,
        schemas.Credentials,
        errors=(400, 409, 413, 415, 429),
    ),
    Operation(
        "POST",
        "/api/token",
        "Log in: access and refresh tokens",
        schemas.TokensOut,
        200,
        schemas.LoginIn,
        errors=(400, 401, 413, 415, 429),
    ),
    Operation(
        "POST",
        "/api/token/refresh",
        "New tokens from a refresh token (rotated: the one sent is spent; reusing it ends the session)",
        schemas.TokensOut,
        200,
        schemas.RefreshIn,
        errors=(400, 401, 413, 415),
    ),
    Operation(
        "POST", "/api/auth/logout", "End this sign-in everywhere", schemas.SignedOutOut, auth="required", errors=(401,)
    ),
    Operation(
        "POST",
        "/api/auth/password",
        "Change the password: every other sign-in ends; new tokens for this one",
        schemas.TokensOut,
        200,
        schemas.PasswordChangeIn,
        auth="required",
        errors=(400, 401, 413, 415, 429),
    ),
    Operation(
        "POST",
        "/api/auth/ws-ticket",
        "A single-use ticket to open the WebSocket with (30 s)",
        schemas.WsTicketOut,
        201,
        auth="required",
        errors=(401,),
    ),
    Operation("GET", "/api/auth/me", "The caller's account", schemas.MeOut, auth="required", errors=(401,)),
    Operation("GET", "/api/categories", "Event categories", schemas.CategoriesOut),
    Operation(
        "GET",
        "/api/events",
        "Events, optionally by category, cursor-paginated",
        schemas.EventsOut,
        query=schemas.EventsQuery,
        errors=(400,),
    ),
    Operation(
        "POST",
        "/api/events",
        "Create an event (staff)",
        schemas.EventOut,
        201,
        schemas.EventIn,
        auth="staff",
        errors=(400, 401, 403, 413, 415),
    ),
    Operation("GET", "/api/events/{event_id}", "An event with its showtimes", schemas.EventDetailOut, errors=(404,)),
    Operation(
        "POST",
        "/api/events/{event_id}/showtimes",
        "Create a showtime and its tickets (staff)",
        schemas.ShowtimeCreatedOut,
        201,
        schemas.ShowtimeIn,
        auth="staff",
        errors=(400, 401, 403, 404, 409, 413, 415),
    ),
    Operation(
        "PATCH",
        "/api/events/{event_id}",
        "Edit an event: the fields sent change (staff)",
        schemas.EventOut,
        200,
        schemas.EventPatchIn,
        auth="staff",
        errors=(400, 401, 403, 404, 413, 415),
    ),
    Operation(
        "PATCH",
        "/api/events/{event_id}/showtimes/{showtime_id}",
        "Move a showtime's start within its date, while none of its seats is sold or in checkout (staff)",
        schemas.ShowtimeCreatedOut,
        200,
        schemas.ShowtimePatchIn,
        auth="staff",
        errors=(400, 401, 403, 404, 409, 413, 415),
    ),
    Operation(
        "GET",
        "/api/staff/showtimes/{showtime_id}",
        "A showtime's seats by status and its revenue (staff)",
        schemas.StaffShowtimeOut,
        auth="staff",
        errors=(401, 403, 404),
    ),
    Operation(
        "GET",
        "/api/orders/{order_id}/tickets",
        "Your order's e-tickets: signed codes and QR images (valid seats), and what became of the others",
        schemas.OrderTicketsOut,
        auth="required",
        errors=(401, 404, 503),
    ),
    Operation(
        "POST",
        "/api/checkin",
        "Admit a scanned e-ticket at the door, once (staff or a scanner)",
        schemas.CheckinOut,
        200,
        schemas.CheckinIn,
        auth="required",
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
    ),
    Operation(
        "POST",
        "/api/staff/scanners",
        "Give an account the door-scanner role (check-in only), or take it back (staff)",
        schemas.ScannerOut,
        200,
        schemas.ScannerIn,
        auth="staff",
        errors=(400, 401, 403, 404, 413, 415),
    ),
    Operation(
        "GET",
        "/api/checkin/keys",
        "The public keys that verify e-tickets offline (current and earlier ones)",
        schemas.PublicKeysOut,
    ),
    Operation(
        "GET",
        "/api/checkin/showtimes/{showtime_id}/revocations",
        "A showtime's revoked e-tickets since a cursor, for offline scanners (staff or a scanner)",
        schemas.RevocationsOut,
        query=schemas.RevocationsQuery,
        auth="required",
        errors=(400, 401, 403, 404),
    ),
    Operation(
        "GET",
        "/api/showtimes/{showtime_id}/sale",
        "Whether a showtime is on sale and whether a waiting room guards it",
        schemas.SaleOut,
        errors=(404,),
    ),
    Operation(
        "POST",
        "/api/showtimes/{showtime_id}/queue",
        "Join a showtime's waiting room (one place per account; joining again returns it)",
        schemas.QueueStatusOut,
        auth="required",
        errors=(401, 404, 429),
    ),
    Operation(
        "GET",
        "/api/showtimes/{showtime_id}/queue",
        "Your place: position, estimated wait, the admission once admitted (the poll is the heartbeat)",
        schemas.QueueStatusOut,
        auth="required",
        errors=(401, 404, 429),
    ),
    Operation(
        "DELETE",
        "/api/showtimes/{showtime_id}/queue",
        "Leave the waiting room (an admitted place goes to the next person at once)",
        schemas.QueueStatusOut,
        auth="required",
        errors=(401, 404),
    ),
    Operation(
        "PUT",
        "/api/staff/showtimes/{showtime_id}/sale",
        "Set a showtime's on-sale time, waiting room, admission rate and cap (staff)",
        schemas.SaleDashboardOut,
        200,
        schemas.SaleIn,
        auth="staff",
        errors=(400, 401, 403, 404, 409, 413, 415),
    ),
    Operation(
        "PATCH",
        "/api/staff/showtimes/{showtime_id}/sale",
        "Pause, resume, or change the rate or cap of a sale (staff)",
        schemas.SaleDashboardOut,
        200,
        schemas.SaleControlIn,
        auth="staff",
        errors=(400, 401, 403, 404, 413, 415),
    ),
    Operation(
        "GET",
        "/api/staff/showtimes/{showtime_id}/sale",
        "A sale's dashboard: waiting, admitted, shopping, bought, left; waits; the rate (staff)",
        schemas.SaleDashboardOut,
        auth="staff",
        errors=(401, 403, 404),
    ),
    Operation(
        "GET",
        "/api/events/{event_id}/tickets",
        "Seats of an event's showtimes",
        schemas.TicketsOut,
        query=schemas.TicketsQuery,
        auth="optional",
        errors=(400, 401, 404),
    ),
)
OPERATIONS = OPERATIONS + payment_operations(Operation)


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": _REF.format(model=model.__name__)}


def _collect(models: set[type[BaseModel]]) -> dict:
    components: dict = {}
    for model in sorted(models, key=lambda m: m.__name__):
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        for name, sub in schema.pop("$defs", {}).items():
            components[name] = sub
        components[model.__name__] = schema
    return components


def _parameters(op: Operation) -> list[dict]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
        for name in _path_params(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=_REF)
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            param = {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _not_null(prop: dict) -> dict:
    """A query parameter is absent or a string on the wire: drop pydantic's `null` branch of Optional."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
    if prop.get("default", 0) is None:
        del prop["default"]
    branches = prop.pop("anyOf", None)
    if branches is None:
        return prop
    kept = [b for b in branches if b.get("type") != "null"]
    if len(kept) == 1:
        return {**kept[0], **prop}
    return {"anyOf": kept, **prop}


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation(op: Operation) -> dict:
    success: dict = {"description": "OK"}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": _ref(op.response)}}
    else:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict = {str(op.status): success}
    for status in op.errors:
        responses[str(status)] = {
            "description": "Error",
            "content": {"application/json": {"schema": _ref(schemas.ErrorOut)}},
        }
    spec: dict = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    if op.auth in ("required", "staff"):
        spec["security"] = [{"bearer": []}]
    elif op.auth == "optional":
        spec["security"] = [{}, {"bearer": []}]
    return spec


@lru_cache(maxsize=1)
def document() -> dict:
    models: set[type[BaseModel]] = {schemas.ErrorOut}
    paths: dict = {}
    for op in OPERATIONS:
        for model in (op.response, op.body):
            if model is not None:
                models.add(model)
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tickets API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": _collect(models),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
