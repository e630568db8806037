"""The routing table: REST routes, WebSocket handlers, stream / queue / schedule handlers.

Each handler: parse -> one service call -> dict, or raise. No boto3 / pynamodb here.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from typing import TYPE_CHECKING

from chalice import Chalice, Rate

from chalicelib import queries
from chalicelib.auth import bearer_token
from chalicelib.config import get_settings
from chalicelib.errors import DomainError, PayloadTooLarge
from chalicelib.http import MAX_BODY_BYTES, endpoint, json_response, parse_body, parse_query, status_for
from chalicelib.observability import logger, metrics
from chalicelib.wiring import container


class _OnFirstUse:
    """A module imported when a handler first reads from it. The request models (pydantic) are most of the app's
    import time, and a cold start of a handler that parses no body (a WebSocket frame, a queue or stream batch)
    should not pay for them (infra/README.md, "Cold start")."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


if TYPE_CHECKING:
    from chalicelib import payment_schemas, schemas
else:
    schemas = _OnFirstUse("chalicelib.schemas")
    payment_schemas = _OnFirstUse("chalicelib.payment_schemas")

app = Chalice(app_name="tickets")
app.experimental_feature_flags.update(["WEBSOCKETS"])
# The web app may be served from another origin (S3 + CloudFront); auth is a bearer token, not a cookie.
app.api.cors = True
_settings = get_settings()


_PER_INVOCATION_KEYS = ["request_id", "user_id", "connection_id", "order_id"]


@app.middleware("all")
def _per_invocation(event, get_response):
    # REST requests carry the Lambda context as `lambda_context`, every other event as `context`. Keys are
    # thread-local: the local runtime runs many handlers in threads of one process.
    context = getattr(event, "lambda_context", None) or getattr(event, "context", None)
    logger.thread_safe_append_keys(request_id=getattr(context, "aws_request_id", None))
    try:
        return get_response(event)
    finally:
        metrics.flush()
        logger.thread_safe_remove_keys(_PER_INVOCATION_KEYS)


def _request():
    return app.current_request


def _source() -> str | None:
    """The client's address as API Gateway saw it (identity.sourceIp), for per-source limits."""
    context = _request().context or {}
    return (context.get("identity") or {}).get("sourceIp")


def _body(model):
    request = _request()
    return parse_body(request.raw_body, request.headers.get("content-type"), model)


def _query(model):
    return parse_query(_request().query_params, model)


def _caller(required: bool = True) -> str | None:
    header = _request().headers.get("authorization")
    if header is None and not required:
        return None
    user_id = container().accounts.authenticate(bearer_token(header))
    logger.thread_safe_append_keys(user_id=user_id)
    return user_id


def _user() -> str:
    user_id = _caller()
    if user_id is None:  # unreachable: a required caller raises Unauthorized
        raise RuntimeError("caller missing")
    return user_id


def _staff() -> str:
    user_id = _user()
    container().accounts.require_staff(user_id)
    return user_id


def _door() -> str:
    """Staff or a ticket scanner (docs/tickets.md, "Who may scan")."""
    user_id = _user()
    container().accounts.require_door(user_id)
    return user_id


# --- meta -----------------------------------------------------------------------------------


@app.route("/api/health", methods=["GET"])
@endpoint()
def health():
    report = container().health.check()
    if report["status"] != "ok":
        body = {**report, "code": "service_unavailable", "message": "The service cannot reach its tables."}
        return json_response(body, 503)
    return report


@app.route("/api/schema", methods=["GET"])
@endpoint()
def schema():
    from chalicelib.openapi import document

    return document()


# --- accounts -------------------------------------------------------------------------------


@app.route("/api/auth/register", methods=["POST"], content_types=["application/json"])
@endpoint(status=201)
def register():
    body = _body(schemas.Credentials)
    user = container().accounts.register(body.email, body.password, source=_source())
    return {"id": user.id, "email": user.email}


@app.route("/api/token", methods=["POST"], content_types=["application/json"])
@endpoint()
def token():
    body = _body(schemas.LoginIn)
    return container().accounts.login(body.email, body.password, source=_source())


@app.route("/api/token/refresh", methods=["POST"], content_types=["application/json"])
@endpoint()
def token_refresh():
    body = _body(schemas.RefreshIn)
    return container().accounts.refresh(body.refresh)


@app.route("/api/auth/logout", methods=["POST"])
@endpoint()
def logout():
    container().accounts.logout(bearer_token(_request().headers.get("authorization")))
    return {"status": "signed_out"}


@app.route("/api/auth/password", methods=["POST"], content_types=["application/json"])
@endpoint()
def change_password():
    body = _body(schemas.PasswordChangeIn)
    token = bearer_token(_request().headers.get("authorization"))
    return container().accounts.change_password(token, body.current_password, body.new_password)


@app.route("/api/auth/ws-ticket", methods=["POST"])
@endpoint(status=201)
def ws_ticket():
    accounts = container().accounts
    claims = accounts.sessions.authenticate(bearer_token(_request().headers.get("authorization")))
    return accounts.sessions.ws_ticket(claims)


@app.route("/api/auth/me", methods=["GET"])
@endpoint()
def me():
    user = container().accounts.user(_user())
    return {"id": user.id, "email": user.email, "is_staff": user.is_staff, "is_scanner": user.is_scanner}


# --- catalog --------------------------------------------------------------------------------


@app.route("/api/categories", methods=["GET"])
@endpoint()
def categories():
    return container().catalog.categories()


@app.route("/api/events", methods=["GET"])
@endpoint()
def list_events():
    query = queries.events_filter(_request().query_params)
    category = query.category or query.category_name
    return container().catalog.events(category=category, limit=query.limit, cursor=query.cursor)


@app.route("/api/events", methods=["POST"], content_types=["application/json"])
@endpoint(status=201)
def create_event():
    _staff()
    body = _body(schemas.EventIn)
    return container().catalog.create_event(**body.model_dump())


@app.route("/api/events/{event_id}", methods=["GET"])
@endpoint()
def event_detail(event_id):
    return container().catalog.event_detail(event_id)


@app.route("/api/events/{event_id}", methods=["PATCH"], content_types=["application/json"])
@endpoint()
def update_event(event_id):
    _staff()
    body = _body(schemas.EventPatchIn)
    return container().catalog.update_event(event_id, body.changes())


@app.route("/api/events/{event_id}/showtimes", methods=["POST"], content_types=["application/json"])
@endpoint(status=201)
def create_showtime(event_id):
    _staff()
    body = _body(schemas.ShowtimeIn)
    return container().catalog.create_showtime(event_id, **body.model_dump())


@app.route("/api/events/{event_id}/showtimes/{showtime_id}", methods=["PATCH"], content_types=["application/json"])
@endpoint()
def update_showtime(event_id, showtime_id):
    _staff()
    body = _body(schemas.ShowtimePatchIn)
    return container().catalog.update_showtime(event_id, showtime_id, starts_at=body.starts_at)


@app.route("/api/events/{event_id}/tickets", methods=["GET"])
@endpoint()
def event_tickets(event_id):
    query = queries.tickets_filter(_request().query_params)
    viewer = _caller(required=False)
    date = query.date.isoformat() if query.date else None
    return container().catalog.tickets(event_id, date=date, theater=query.theater, viewer=viewer)


# --- cart, payment, orders -------------------------------------------------------------------


@app.route("/api/cart", methods=["GET"])
@endpoint()
def cart():
    query = _query(payment_schemas.CartQuery)
    return container().payments.cart(_user(), query.showtime_id)


@app.route("/api/payment/create", methods=["POST"], content_types=["application/json"])
@endpoint(status=201)
def payment_create():
    user_id = _user()
    body = _body(payment_schemas.CreatePaymentIn)
    return container().payments.create(user_id, body.showtime_id)


@app.route("/api/payment/execute", methods=["GET"])
@endpoint()
def payment_execute():
    user_id = _user()
    query = _query(payment_schemas.TokenQuery)
    return container().payments.execute(user_id, query.token)


@app.route("/api/payment/cancel", methods=["GET"])
@endpoint()
def payment_cancel():
    user_id = _user()
    query = _query(payment_schemas.TokenQuery)
    return container().payments.cancel(user_id, query.token)


@app.route("/api/payment/refund", methods=["POST"], content_types=["application/json"])
@endpoint(status=202)
def payment_refund():
    user_id = _user()
    body = _body(payment_schemas.RefundIn)
    return container().refunds.request(user_id, body.order_id, body.ticket_ids)


@app.route("/api/payment/webhook", methods=["POST"], content_types=["application/json"])
@endpoint()
def payment_webhook():
    request = _request()
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    return container().refunds.webhook(request.headers, raw)


@app.route("/api/orders", methods=["GET"])
@endpoint()
def orders():
    user_id = _user()
    query = _query(payment_schemas.OrdersQuery)
    return container().payments.list_orders(user_id, limit=query.limit, cursor=query.cursor)


@app.route("/api/orders/{order_id}", methods=["GET"])
@endpoint()
def order_detail(order_id):
    return container().payments.order(_user(), order_id)


@app.route("/api/orders/{order_id}/resend", methods=["POST"])
@endpoint(status=202)
def order_resend(order_id):
    return container().emails.resend(_user(), order_id)


@app.route("/api/staff/orders", methods=["GET"])
@endpoint()
def staff_orders():
    _staff()
    query = _query(payment_schemas.StaffOrdersQuery)
    return container().staff.orders(
        attention=query.attention, email=query.email, order_id=query.order_id, limit=query.limit, cursor=query.cursor
    )


@app.route("/api/staff/orders/{order_id}/refund", methods=["POST"], content_types=["application/json"])
@endpoint(status=202)
def staff_refund(order_id):
    staff_user = _staff()
    body = _body(payment_schemas.StaffRefundIn)
    return container().refunds.request_for_staff(order_id, body.ticket_ids, staff_user=staff_user)


@app.route("/api/staff/showtimes/{showtime_id}", methods=["GET"])
@endpoint()
def staff_showtime(showtime_id):
    _staff()
    return container().staff.showtime_report(showtime_id)


# --- e-tickets and the door (docs/tickets.md) -------------------------------------------------


@app.route("/api/orders/{order_id}/tickets", methods=["GET"])
@endpoint()
def order_tickets(order_id):
    return container().etickets.tickets(_user(), order_id)


@app.route("/api/checkin", methods=["POST"], content_types=["application/json"])
@endpoint()
def checkin():
    staff_id = _door()
    body = _body(schemas.CheckinIn)
    scanned_at = body.scanned_at.timestamp() if body.scanned_at else None
    from chalicelib.etickets import AlreadyAdmitted

    try:
        return container().etickets.check_in(staff_id, body.code, body.showtime_id, body.door, scanned_at)
    except AlreadyAdmitted as exc:
        # When and where it first came in: the door needs it, so it is part of the answer.
        return json_response(
            {
                "code": exc.code,
                "message": exc.message,
                "first_admitted_at": dt.datetime.fromtimestamp(exc.admitted_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "door": exc.door,
            },
            409,
        )


@app.route("/api/staff/scanners", methods=["POST"], content_types=["application/json"])
@endpoint()
def staff_scanners():
    _staff()
    body = _body(schemas.ScannerIn)
    return container().accounts.set_scanner(body.email, body.is_scanner)


@app.route("/api/checkin/keys", methods=["GET"])
@endpoint()
def checkin_keys():
    return container().etickets.public_keys()


@app.route("/api/checkin/showtimes/{showtime_id}/revocations", methods=["GET"])
@endpoint()
def checkin_revocations(showtime_id):
    _door()
    query = _query(schemas.RevocationsQuery)
    return container().etickets.revocations(showtime_id, query.since)


# --- waiting room (docs/waiting-room.md) ---------------------------------------------------------


@app.route("/api/showtimes/{showtime_id}/sale", methods=["GET"])
@endpoint()
def showtime_sale(showtime_id):
    return container().waitroom.public_sale(showtime_id)


@app.route("/api/showtimes/{showtime_id}/queue", methods=["POST"])
@endpoint()
def queue_join(showtime_id):
    return container().waitroom.join(_user(), showtime_id)


@app.route("/api/showtimes/{showtime_id}/queue", methods=["GET"])
@endpoint()
def queue_status(showtime_id):
    return container().waitroom.status(_user(), showtime_id)


@app.route("/api/showtimes/{showtime_id}/queue", methods=["DELETE"])
@endpoint()
def queue_leave(showtime_id):
    return container().waitroom.leave(_user(), showtime_id)


@app.route("/api/staff/showtimes/{showtime_id}/sale", methods=["PUT"], content_types=["application/json"])
@endpoint()
def staff_sale_configure(showtime_id):
    _staff()
    body = _body(schemas.SaleIn)
    return container().waitroom.configure(showtime_id, **body.model_dump())


@app.route("/api/staff/showtimes/{showtime_id}/sale", methods=["PATCH"], content_types=["application/json"])
@endpoint()
def staff_sale_control(showtime_id):
    _staff()
    body = _body(schemas.SaleControlIn)
    return container().waitroom.control(showtime_id, **body.model_dump())


@app.route("/api/staff/showtimes/{showtime_id}/sale", methods=["GET"])
@endpoint()
def staff_sale(showtime_id):
    _staff()
    return container().waitroom.dashboard(showtime_id)


# --- workers -------------------------------------------------------------------------------


def _purchase_record(record) -> None:
    order_id = json.loads(record.body)["order_id"]
    logger.thread_safe_append_keys(order_id=order_id)
    services = container()
    services.payments.complete_purchase(
        order_id,
        services.refunds.refund_lost_seats,
        # A buyer admitted through a waiting room has had their turn: the place goes to the next person.
        paid=lambda order: services.waitroom.bought(order.user_id, order.showtime_id),
    )


def _refund_record(record) -> None:
    message = json.loads(record.body)
    logger.thread_safe_append_keys(order_id=message["order_id"])
    container().refunds.process(message["order_id"], message["refund_id"])


def _email_record(record) -> None:
    job = json.loads(record.body)
    logger.thread_safe_append_keys(order_id=job["order_id"])
    container().emails.deliver(job)


def _each_record(event, record_handler):
    """batchItemFailures for the records `record_handler` raised on. powertools' batch utility is imported here:
    only the queue workers use it."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    # One processor per invocation: powertools' BatchProcessor keeps per-batch state.
    return process_partial_response(
        event=event.to_dict(),
        record_handler=record_handler,
        processor=BatchProcessor(event_type=EventType.SQS),
        context=event.context,
    )


@app.on_sqs_message(queue_arn=_settings.purchases_queue_arn, batch_size=10)
def purchase_worker(event):
    return _each_record(event, _purchase_record)


@app.on_sqs_message(queue_arn=_settings.refunds_queue_arn, batch_size=10)
def refund_worker(event):
    return _each_record(event, _refund_record)


@app.on_sqs_message(queue_arn=_settings.emails_queue_arn, batch_size=10)
def email_worker(event):
    # A job SES refuses is a batch item failure: retried after the visibility timeout, then the DLQ.
    return _each_record(event, _email_record)


# --- WebSocket seat selection ---------------------------------------------------------------


@app.on_ws_connect()
def ws_connect(event):
    raw = event.to_dict()
    query = raw.get("queryStringParameters") or {}
    source_ip = ((raw.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
    try:
        container().seats.connect(event.connection_id, query, source_ip=source_ip)
    except DomainError as exc:
        return {"statusCode": status_for(exc)}
    except Exception:  # noqa: BLE001 - refuse the handshake, never leak the cause
        logger.exception("connect failed", extra={"connection_id": event.connection_id})
        return {"statusCode": 500}
    return {"statusCode": 200}


@app.on_ws_disconnect()
def ws_disconnect(event):
    container().seats.disconnect(event.connection_id)
    return {"statusCode": 200}


@app.on_ws_message()
def ws_message(event):
    logger.thread_safe_append_keys(connection_id=event.connection_id)
    binary = bool(event.to_dict().get("isBase64Encoded"))
    container().seats.handle_message(event.connection_id, None if binary else event.body, binary=binary)
    return {"statusCode": 200}


@app.on_sqs_message(queue_arn=_settings.fanout_queue_arn, batch_size=1)
def fanout_worker(event):
    # One slice of a big room's broadcast (chalicelib/broadcast.py). A post that fails is logged, not raised:
    # redelivering the slice would post twice to everyone else in it.
    broadcaster = container().broadcaster
    for record in event:
        body = json.loads(record.body)
        broadcaster.post_slice(body["connection_ids"], body["payloads"])


@app.on_dynamodb_record(
    stream_arn=_settings.tickets_stream_arn,
    batch_size=100,
    # 0: a batch starts as soon as records exist; under a rush, records that arrive while a batch is
    # being fanned out coalesce into the next one anyway (one concurrent batch per shard).
    maximum_batching_window_in_seconds=0,
)
def tickets_changed(event):
    from chalicelib.revocations import revoked
    from chalicelib.storage.checkins import CheckinRepository

    services = container()
    images = [(record.old_image, record.new_image, record.sequence_number) for record in event]
    # Sold seats refunded or voided revoke their e-tickets (the doors' revocation list) before anything is posted:
    # if this write fails, the batch is retried with nobody told twice.
    CheckinRepository().add_revocations(revoked(images, services.clock()))
    services.seats.publish(images)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_expired(event):
    services = container()
    released = services.seats.sweep()
    expired = services.payments.expire_orders()
    resent = services.refunds.resend_stalled()
    return {"released": released, "orders_expired": expired, "refunds_resent": resent}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def waitroom_tick(event):
    # Draws and admits for every sale in progress; on AWS one invocation steps every few seconds for most of its
    # minute (WAITROOM_TICK_LOOP_SECONDS), locally the runtime's timer calls it every step.
    return container().waitroom.run_ticker()
