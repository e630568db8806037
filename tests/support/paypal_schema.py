"""Validate PayPal-shaped JSON against PayPal's own OpenAPI 3.0 specs (kept in `tests/support/paypal_specs/`).

Uses `openapi-schema-validator` (OAS 3.0 dialect on top of `jsonschema`): responses with its read validator
(OAS30ReadValidator), request bodies with OAS30Validator, `$ref`s resolved inside the spec file through `referencing`.

    from tests.support.paypal_schema import validate_response, validate_exchange, validate_component
    validate_response("POST", "/v2/checkout/orders", 201, body)      # by concrete path
    validate_exchange(response)                                        # a requests.Response, path found from URL
    validate_component("notifications_webhooks_v1.json", "event", webhook)

Each raises `jsonschema.ValidationError` (with the JSON path of the first offending value) on mismatch.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30ReadValidator, OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_DIR = Path(__file__).resolve().parent / "paypal_specs"

ORDERS = "checkout_orders_v2.json"
PAYMENTS = "payments_payment_v2.json"
WEBHOOKS = "notifications_webhooks_v1.json"
# Which spec describes which path family.
_SPEC_FOR_PREFIX = (("/v2/checkout/", ORDERS), ("/v2/payments/", PAYMENTS), ("/v1/notifications/", WEBHOOKS))
_URN = "urn:paypal-spec:"


@functools.cache
def load_spec(name: str) -> dict[str, Any]:
    with (SPEC_DIR / name).open(encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


@functools.cache
def _registry() -> Registry:
    resources = [
        (_URN + name, Resource.from_contents(load_spec(name), default_specification=DRAFT4))
        for name in (ORDERS, PAYMENTS, WEBHOOKS)
    ]
    return Registry().with_resources(resources)


def _pointer_escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


@functools.cache
def _validator(spec_name: str, pointer: str, write: bool) -> Any:
    # Requests are not held to readOnly: verify-webhook-signature must echo the received event, whose
    # properties PayPal's spec marks readOnly, so the write validator would reject PayPal's own usage.
    cls = OAS30Validator if write else OAS30ReadValidator
    return cls({"$ref": f"{_URN}{spec_name}#{pointer}"}, registry=_registry())


def _validate(spec_name: str, pointer: str, instance: Any, *, write: bool = False) -> None:
    error = best_match(_validator(spec_name, pointer, write).iter_errors(instance))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        raise ValidationError(f"{spec_name}#{pointer} at {where}: {error.message}")


def validate_component(spec_name: str, schema_name: str, instance: Any) -> None:
    """Validate against `components.schemas.<schema_name>` of one spec file."""
    _validate(spec_name, f"/components/schemas/{_pointer_escape(schema_name)}", instance)


def spec_for_path(path: str) -> str | None:
    return next((spec for prefix, spec in _SPEC_FOR_PREFIX if path.startswith(prefix)), None)


@functools.cache
def _templates(spec_name: str) -> list[tuple[re.Pattern[str], str]]:
    templates = []
    for template in load_spec(spec_name)["paths"]:
        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        templates.append((re.compile(f"^{regex}$"), template))
    return templates


def find_operation(path: str) -> tuple[str, str] | None:
    """Map a concrete API path to (spec file, path template), or None for paths no spec describes."""
    spec_name = spec_for_path(path)
    if spec_name is None:
        return None
    for regex, template in _templates(spec_name):
        if regex.match(path):
            return spec_name, template
    return None


def _operation_pointer(template: str, method: str) -> str:
    return f"/paths/{_pointer_escape(template)}/{method.lower()}"


def response_schema_pointer(spec_name: str, template: str, method: str, status: int) -> str:
    """JSON pointer to the schema of the documented response, else of the spec's `default` error response."""
    operation = load_spec(spec_name)["paths"][template][method.lower()]
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "default"
    response = responses.get(key) or {"$ref": "#/components/responses/default"}
    base = f"{_operation_pointer(template, method)}/responses/{key}"
    if "$ref" in response:
        base = response["$ref"][1:]
        response = load_spec(spec_name)["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    if "application/json" not in (response.get("content") or {}):
        # e.g. Payments v2 documents its 500s with no body schema: hold them to the default error schema.
        return "/components/schemas/error_default"
    return f"{base}/content/application~1json/schema"


def validate_response(method: str, path: str, status: int, body: Any) -> str:
    """Validate a response body for a concrete path; returns the spec path template it matched."""
    found = find_operation(path)
    if found is None:
        raise LookupError(f"no PayPal spec describes {method} {path}")
    spec_name, template = found
    _validate(spec_name, response_schema_pointer(spec_name, template, method, status), body)
    return template


def validate_request(method: str, path: str, body: Any) -> None:
    """Validate a request body against the operation's `requestBody` schema."""
    found = find_operation(path)
    if found is None:
        raise LookupError(f"no PayPal spec describes {method} {path}")
    spec_name, template = found
    pointer = f"{_operation_pointer(template, method)}/requestBody/content/application~1json/schema"
    _validate(spec_name, pointer, body, write=True)


def validate_exchange(response: Any, *, strip_prefix: str = "", check_request: bool = True) -> str | None:
    """Validate one `requests.Response` (and, unless `check_request` is False, its JSON request body)
    if a spec describes its path.

    `strip_prefix` is the path under which the API is mounted (e.g. "/paypal"). Returns the matched
    template, or None when the path is not a spec'd PayPal API (OAuth token, emulator control, pages).
    """
    path = urlsplit(response.request.url).path
    if strip_prefix and path.startswith(strip_prefix):
        path = path[len(strip_prefix) :]
    if find_operation(path) is None:
        return None
    request_body = response.request.body
    if check_request and request_body:
        validate_request(response.request.method, path, json.loads(request_body))
    return validate_response(response.request.method, path, response.status_code, response.json())
