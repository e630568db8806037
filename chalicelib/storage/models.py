"""PynamoDB models. They never leave chalicelib.storage: repositories return plain records.

Table names and endpoints are bound at run time by bind_models(settings), so importing this
module reads no environment and opens no connection.
"""

from __future__ import annotations

import contextlib
import threading

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.connection import Connection as PynamoConnection
from pynamodb.connection import TableConnection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib import tables
from chalicelib.config import Settings


class _Meta:
    table_name = "unbound"
    region = "us-east-1"
    host: str | None = None
    max_pool_connections = 64
    connect_timeout_seconds = 3
    read_timeout_seconds = 10
    max_retry_attempts = 3


class _Model(Model):
    """Every model of a process on one pynamodb Connection, so one botocore session and DynamoDB client: pynamodb
    builds one per model class, and each build loads botocore's endpoint and service JSON again (~50 ms of a cold
    start per table a request touches)."""

    @classmethod
    def _get_connection(cls) -> TableConnection:
        table = super()._get_connection()
        shared = _shared_connection()
        if table.connection is not shared:
            meta_table = table.get_meta_table()
            table.connection = shared
            with contextlib.suppress(ValueError):  # already added by a concurrent first call
                shared.add_meta_table(meta_table)
        return table


class User(_Model):
    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)  # USER#<id> | EMAIL#<email>
    user_id = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute(null=True)
    is_staff = BooleanAttribute(default=False)
    is_scanner = BooleanAttribute(null=True)  # door staff: check-in only (issue 15)
    created_at = UnicodeAttribute(null=True)
    # Moved by a password change: sessions that began under an older epoch are over.
    session_epoch = NumberAttribute(default=0)


class Category(_Model):
    class Meta(_Meta):
        pass

    slug = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()


class EventsByCategory(GlobalSecondaryIndex["Event"]):
    class Meta:
        index_name = "by_category"
        projection = AllProjection()

    category = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Event(_Model):
    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    title = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    category = UnicodeAttribute()
    category_name = UnicodeAttribute()
    duration_minutes = NumberAttribute()
    created_at = UnicodeAttribute()
    by_category = EventsByCategory()


class ShowtimesByEvent(GlobalSecondaryIndex["Showtime"]):
    class Meta:
        index_name = "by_event"
        projection = AllProjection()

    event_id = UnicodeAttribute(hash_key=True)
    starts_at = UnicodeAttribute(range_key=True)


class Showtime(_Model):
    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    event_id = UnicodeAttribute()
    date = UnicodeAttribute()
    theater = UnicodeAttribute()
    starts_at = UnicodeAttribute()
    rows = NumberAttribute()
    seats_per_row = NumberAttribute()
    price = UnicodeAttribute()
    currency = UnicodeAttribute()
    tickets_count = NumberAttribute()
    by_event = ShowtimesByEvent()


class TicketsByExpiry(GlobalSecondaryIndex["Ticket"]):
    class Meta:
        index_name = "by_expiry"
        projection = IncludeProjection(["holder"])

    sweep_shard = UnicodeAttribute(hash_key=True)
    hold_expires_at = NumberAttribute(range_key=True)


class Ticket(_Model):
    class Meta(_Meta):
        pass

    showtime_id = UnicodeAttribute(hash_key=True)
    ticket_id = UnicodeAttribute(range_key=True)
    row = UnicodeAttribute()
    number = NumberAttribute()
    price = UnicodeAttribute()
    currency = UnicodeAttribute()
    status = UnicodeAttribute(default="available")  # available | held | checkout | sold
    holder = UnicodeAttribute(null=True)
    hold_expires_at = NumberAttribute(null=True)
    # A checkout keeps the hold's own expiry here, so cancelling restores the hold as it was.
    hold_expiry_before_checkout = NumberAttribute(null=True)
    order_id = UnicodeAttribute(null=True)
    sweep_shard = UnicodeAttribute(null=True)
    # After a hold (or a checkout) ran out unpaid: whose it was, and until when that user may not take it again.
    last_holder = UnicodeAttribute(null=True)
    cooldown_until = NumberAttribute(null=True)
    # Door check-in of a sold e-ticket (issue 15): set once, by a conditional write.
    checked_in_at = NumberAttribute(null=True)
    checked_in_door = UnicodeAttribute(null=True)
    checked_in_by = UnicodeAttribute(null=True)
    by_expiry = TicketsByExpiry()


class Cart(_Model):
    class Meta(_Meta):
        pass

    user_id = UnicodeAttribute(hash_key=True)
    showtime_id = UnicodeAttribute(range_key=True)
    holds: MapAttribute = MapAttribute(default=dict)  # ticket_id -> expires_at (epoch seconds)
    version = NumberAttribute(default=0)
    open_order = UnicodeAttribute(null=True)  # the buyer's order in `created` for this showtime
    budget_from = NumberAttribute(null=True)  # when the buyer's hold-time budget here began (epoch seconds)


class ConnectionsByRoom(GlobalSecondaryIndex["Connection"]):
    class Meta:
        index_name = "by_room"
        projection = KeysOnlyProjection()

    room = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute(range_key=True)


class ConnectionsByUser(GlobalSecondaryIndex["Connection"]):
    class Meta:
        index_name = "by_user"
        projection = IncludeProjection(["session_id"])

    user_id = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute(range_key=True)


class Connection(_Model):
    class Meta(_Meta):
        pass

    connection_id = UnicodeAttribute(hash_key=True)
    room = UnicodeAttribute()
    user_id = UnicodeAttribute()
    connected_at = NumberAttribute()
    source_ip = UnicodeAttribute(null=True)
    session_id = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()
    by_room = ConnectionsByRoom()
    by_user = ConnectionsByUser()


class OrdersByUser(GlobalSecondaryIndex["Order"]):
    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class OrdersByAttention(GlobalSecondaryIndex["Order"]):
    class Meta:
        index_name = "by_attention"
        projection = AllProjection()

    attention = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class OrdersByOpenExpiry(GlobalSecondaryIndex["Order"]):
    class Meta:
        index_name = "by_open_expiry"
        projection = KeysOnlyProjection()

    open_shard = UnicodeAttribute(hash_key=True)
    expires_at = NumberAttribute(range_key=True)


class Order(_Model):
    class Meta(_Meta):
        pass

    order_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    showtime_id = UnicodeAttribute()
    event_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    amount = UnicodeAttribute()
    currency = UnicodeAttribute()
    tickets: ListAttribute = ListAttribute(default=list)  # [{ticket_id, seat, price, row?, number?}]
    refunded_ticket_ids: ListAttribute = ListAttribute(default=list)
    paypal_order_id = UnicodeAttribute(null=True)
    approval_url = UnicodeAttribute(null=True)
    capture_id = UnicodeAttribute(null=True)
    capture_attempt = NumberAttribute(default=0)
    capture_declined = BooleanAttribute(null=True)  # the last capture attempt was declined by PayPal
    dispute_id = UnicodeAttribute(null=True)
    dispute_status = UnicodeAttribute(null=True)  # open | resolved
    dispute_outcome = UnicodeAttribute(null=True)
    attention = UnicodeAttribute(null=True)  # disputed | reversed: the sparse by_attention index lists them for staff
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute()
    open_shard = UnicodeAttribute(null=True)
    refunds: MapAttribute = MapAttribute(default=dict)  # refund_id -> {status, amount, ticket_ids, reason, ...}
    failure_reason = UnicodeAttribute(null=True)
    # What was bought, copied at checkout (absent on older orders); why a cancelled order ended.
    event_title = UnicodeAttribute(null=True)
    starts_at = UnicodeAttribute(null=True)
    theater = UnicodeAttribute(null=True)
    cancel_reason = UnicodeAttribute(null=True)
    by_user = OrdersByUser()
    by_open_expiry = OrdersByOpenExpiry()
    by_attention = OrdersByAttention()


class PaymentRef(_Model):
    class Meta(_Meta):
        pass

    ref = UnicodeAttribute(hash_key=True)
    order_id = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)


class Session(_Model):
    """SESSION#<id>: one sign-in, i.e. one refresh-token family; WSTICKET#<id>: a WebSocket connect ticket."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    session_id = UnicodeAttribute(null=True)  # a ticket's session
    epoch = NumberAttribute(default=0)  # the user's session epoch when it began (a password change moves it)
    refresh_jti = UnicodeAttribute(null=True)  # the one refresh token of this family that may be used
    refresh_iat = NumberAttribute(null=True)
    previous_jti = UnicodeAttribute(null=True)  # the one before it, honoured for a moment (two tabs at once)
    rotated_at = NumberAttribute(null=True)
    revoked_at = NumberAttribute(null=True)
    expires_at = NumberAttribute()


class Limit(_Model):
    """A rate-limit window: `pk` = <scope>#<subject>#<window start>; its counters are attributes of their own
    (written with raw UpdateItem ADDs, see storage/limits.py), so one write counts several limits at once."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    expires_at = NumberAttribute(null=True)


class SentEmail(_Model):
    """One email of the email worker (storage/emails.py): `key` = <order id>#<kind>[#<id>]; `state` sending (a
    claim, good until `lease_until`) or sent."""

    class Meta(_Meta):
        pass

    key = UnicodeAttribute(hash_key=True)
    state = UnicodeAttribute()
    lease_until = NumberAttribute(null=True)
    claim = UnicodeAttribute(null=True)  # which attempt holds the lease: only it may release or complete it
    message_id = UnicodeAttribute(null=True)
    sent_at = NumberAttribute(null=True)
    expires_at = NumberAttribute()


class _WaitroomIndex(GlobalSecondaryIndex["WaitroomItem"]):
    class Meta:
        projection = KeysOnlyProjection()


class WaitroomByDraw(_WaitroomIndex):
    class Meta(_WaitroomIndex.Meta):
        index_name = "by_draw"

    draw_pk = UnicodeAttribute(hash_key=True)
    draw = NumberAttribute(range_key=True)


class WaitroomByArrival(_WaitroomIndex):
    class Meta(_WaitroomIndex.Meta):
        index_name = "by_arrival"

    arrival_pk = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)


class WaitroomByLapse(_WaitroomIndex):
    class Meta(_WaitroomIndex.Meta):
        index_name = "by_lapse"

    lapse_pk = UnicodeAttribute(hash_key=True)
    admission_expires = NumberAttribute(range_key=True)


class WaitroomByActive(_WaitroomIndex):
    class Meta(_WaitroomIndex.Meta):
        index_name = "by_active"

    active = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class WaitroomItem(_Model):
    """One table, four kinds of item (tables.WAITROOM): a sale's settings and state, a place, a draw page, the
    arrival counter. Every attribute but the key is optional: each kind sets its own."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    # SALE#: settings
    showtime_id = UnicodeAttribute(null=True)
    on_sale_at = NumberAttribute(null=True)
    guarded = BooleanAttribute(null=True)
    rate_per_minute = NumberAttribute(null=True)
    max_shopping = NumberAttribute(null=True)
    paused = BooleanAttribute(null=True)
    active = UnicodeAttribute(null=True)
    # SALE#: the ticker's state (written by the ticker alone, under `tick_at`)
    tick_at = NumberAttribute(null=True)
    allowance = NumberAttribute(null=True)  # admissions owed but not yet given (fractions carry over)
    drawn = NumberAttribute(null=True)  # pre-opening places in the draw (absent until the draw)
    draw_pages = NumberAttribute(null=True)
    draw_cursor = NumberAttribute(null=True)  # how far the ticker has walked the draw's order
    seq_cursor = NumberAttribute(null=True)  # the last arrival seq the ticker walked
    admitted = NumberAttribute(null=True)
    vanished = NumberAttribute(null=True)
    lapsed = NumberAttribute(null=True)
    wait_total = NumberAttribute(null=True)
    wait_max = NumberAttribute(null=True)
    # SALE#: counters users move (one ADD each)
    joined = NumberAttribute(null=True)
    left = NumberAttribute(null=True)
    bought = NumberAttribute(null=True)
    left_admitted = NumberAttribute(null=True)  # of `left`, those who left while admitted (shopping)
    # ENTRY#: a place
    user_id = UnicodeAttribute(null=True)
    state = UnicodeAttribute(null=True)  # waiting | admitted | bought | left | lapsed | vanished
    joined_at = NumberAttribute(null=True)
    heartbeat_at = NumberAttribute(null=True)
    draw_pk = UnicodeAttribute(null=True)
    draw = NumberAttribute(null=True)
    arrival_pk = UnicodeAttribute(null=True)
    seq = NumberAttribute(null=True)
    admitted_at = NumberAttribute(null=True)
    admission_id = UnicodeAttribute(null=True)
    admission_expires = NumberAttribute(null=True)
    lapse_pk = UnicodeAttribute(null=True)
    # DRAW#: a page of the draw's order (user ids); SEQ#: the counter
    users: ListAttribute = ListAttribute(of=UnicodeAttribute, null=True)
    counter = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    by_draw = WaitroomByDraw()
    by_arrival = WaitroomByArrival()
    by_lapse = WaitroomByLapse()
    by_active = WaitroomByActive()


class Revocation(_Model):
    class Meta(_Meta):
        pass

    showtime_id = UnicodeAttribute(hash_key=True)
    rev = UnicodeAttribute(range_key=True)  # <epoch ms, 13 digits>#<ticket id>
    ticket_id = UnicodeAttribute()
    order_id = UnicodeAttribute()
    reason = UnicodeAttribute()  # refunded | void
    expires_at = NumberAttribute(null=True)


MODELS: dict[str, type[Model]] = {
    tables.USERS.logical: User,
    tables.CATEGORIES.logical: Category,
    tables.EVENTS.logical: Event,
    tables.SHOWTIMES.logical: Showtime,
    tables.TICKETS.logical: Ticket,
    tables.CARTS.logical: Cart,
    tables.CONNECTIONS.logical: Connection,
    tables.ORDERS.logical: Order,
    tables.PAYMENT_REFS.logical: PaymentRef,
    tables.SESSIONS.logical: Session,
    tables.LIMITS.logical: Limit,
    tables.EMAILS.logical: SentEmail,
    tables.WAITROOM.logical: WaitroomItem,
    tables.REVOCATIONS.logical: Revocation,
}


_binding: dict[str, object] = {"region": _Meta.region, "host": None, "connection": None}


_binding_lock = threading.Lock()


def _shared_connection() -> PynamoConnection:
    """The connection bound by bind_models: one per process, thread-safe, its client built on first use."""
    connection = _binding["connection"]
    if connection is None:
        with _binding_lock:
            connection = _binding["connection"]
            if connection is None:
                connection = PynamoConnection(
                    region=str(_binding["region"]),
                    host=_binding["host"],  # type: ignore[arg-type]
                    max_pool_connections=_Meta.max_pool_connections,
                    connect_timeout_seconds=_Meta.connect_timeout_seconds,
                    read_timeout_seconds=_Meta.read_timeout_seconds,
                    max_retry_attempts=_Meta.max_retry_attempts,
                )
                # Build the botocore client now, once: concurrent first calls would each build one.
                connection.client  # noqa: B018
                _binding["connection"] = connection
    return connection  # type: ignore[return-value]


def transact_write() -> TransactWrite:
    """A TransactWrite on the shared connection."""
    return TransactWrite(connection=_shared_connection())


def bind_models(settings: Settings) -> None:
    """Point every model at its table for these settings (names, region, endpoint)."""
    _binding.update(region=settings.region, host=settings.dynamodb_endpoint, connection=None)
    for logical, model in MODELS.items():
        model.Meta.table_name = settings.table_name(logical)
        model.Meta.region = settings.region
        model.Meta.host = settings.dynamodb_endpoint
        # pynamodb caches the connection per class; drop it so the new binding takes effect.
        model._connection = None


def warm_clients() -> None:
    """Build the shared botocore client and every model's table connection now. A process that serves many threads
    at once (the local runtime) would otherwise have each of its first concurrent requests build a client of its
    own, ~0.1 s of CPU each."""
    for model in MODELS.values():
        model._get_connection()
