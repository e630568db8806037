"""Table and queue definitions: the single source of truth for the local stack, the tests and infra.

Deliberately free of boto3/pynamodb imports so CDK synth and the local runtime can read it cheaply.
"""

from __future__ import annotations

from typing import NamedTuple


class Key(NamedTuple):
    name: str
    type: str = "S"  # "S" | "N"


class Index(NamedTuple):
    name: str
    hash_key: Key
    range_key: Key | None = None
    projection: str = "ALL"  # "ALL" | "KEYS_ONLY" | "INCLUDE"
    non_key_attributes: tuple[str, ...] = ()


class TableSpec(NamedTuple):
    logical: str
    hash_key: Key
    range_key: Key | None = None
    indexes: tuple[Index, ...] = ()
    stream: str | None = None  # StreamViewType
    ttl_attribute: str | None = None
    purpose: str = ""

    def key_attributes(self) -> list[Key]:
        """Every attribute that appears in a key of the table or of one of its indexes."""
        seen: dict[str, Key] = {}
        for key in (self.hash_key, self.range_key):
            if key:
                seen.setdefault(key.name, key)
        for index in self.indexes:
            for key in (index.hash_key, index.range_key):
                if key:
                    seen.setdefault(key.name, key)
        return list(seen.values())


class QueueSpec(NamedTuple):
    logical: str
    max_receive_count: int = 5
    consumer_timeout_seconds: int = 60
    batch_size: int = 10
    purpose: str = ""
    dlq_retention_seconds: int = 14 * 24 * 3600
    # FIFO: order kept within a message group, each message delivered once (its dead-letter queue is FIFO too).
    fifo: bool = False

    def name(self, prefix: str) -> str:
        return f"{prefix}{self.logical}{'.fifo' if self.fifo else ''}"

    def dlq_name(self, prefix: str) -> str:
        return f"{prefix}{self.dlq_logical}{'.fifo' if self.fifo else ''}"

    @property
    def visibility_timeout_seconds(self) -> int:
        # AWS guidance: at least six times the consumer's timeout, so retries of a batch
        # never overlap a still-running invocation.
        return 6 * self.consumer_timeout_seconds

    @property
    def dlq_logical(self) -> str:
        return f"{self.logical}-dlq"


# Number of partitions of the sparse expiry index, so a ticket-drop rush does not pile every
# hold onto one hot index partition. The sweeper queries each shard.
SWEEP_SHARDS = 4

USERS = TableSpec(
    logical="users",
    hash_key=Key("pk"),
    purpose="USER#<id> holds the account; EMAIL#<email> maps an email to its id "
    "(written in one transaction, so an email is taken exactly once).",
)
CATEGORIES = TableSpec(logical="categories", hash_key=Key("slug"), purpose="category list (scan, tiny)")
EVENTS = TableSpec(
    logical="events",
    hash_key=Key("id"),
    indexes=(Index("by_category", Key("category"), Key("created_at")),),
    purpose="events by id; by_category serves ?category= listing with cursor pagination",
)
SHOWTIMES = TableSpec(
    logical="showtimes",
    hash_key=Key("id"),
    indexes=(Index("by_event", Key("event_id"), Key("starts_at")),),
    purpose="showtime by id (id derived from event, date, theater); by_event lists an event's showtimes",
)
TICKETS = TableSpec(
    logical="tickets",
    hash_key=Key("showtime_id"),
    range_key=Key("ticket_id"),
    indexes=(
        Index(
            "by_expiry",
            Key("sweep_shard"),
            Key("hold_expires_at", "N"),
            projection="INCLUDE",
            non_key_attributes=("holder",),
        ),
    ),
    stream="NEW_AND_OLD_IMAGES",
    purpose="a showtime's seat map in one query; the stream drives every room broadcast; "
    "by_expiry is sparse (only plain holds carry sweep_shard) and feeds the expiry sweeper",
)
CARTS = TableSpec(
    logical="carts",
    hash_key=Key("user_id"),
    range_key=Key("showtime_id"),
    purpose="per user and showtime: holds map ticket -> expiry and a version for optimistic locking",
)
CONNECTIONS = TableSpec(
    logical="connections",
    hash_key=Key("connection_id"),
    indexes=(
        Index("by_room", Key("room"), Key("connection_id"), projection="KEYS_ONLY"),
        # A user's sockets, to close those of a session that ended (logout, password change, stolen token).
        Index(
            "by_user", Key("user_id"), Key("connection_id"), projection="INCLUDE", non_key_attributes=("session_id",)
        ),
    ),
    ttl_attribute="expires_at",
    purpose="WebSocket connections; by_room lists a showtime's viewers for broadcasts (keys only: a broadcast "
    "needs the ids alone, and each query reads and pays for less); TTL removes abandoned rows",
)
ORDERS = TableSpec(
    logical="orders",
    hash_key=Key("order_id"),
    indexes=(
        Index("by_user", Key("user_id"), Key("created_at")),
        Index("by_open_expiry", Key("open_shard"), Key("expires_at", "N"), projection="KEYS_ONLY"),
        Index("by_attention", Key("attention"), Key("created_at")),
    ),
    purpose="orders with their refunds; by_user lists a buyer's orders newest first; "
    "by_open_expiry is sparse (only created orders) and feeds the order sweeper; by_attention is sparse (disputed "
    "and reversed orders only) and lists them for staff",
)
PAYMENT_REFS = TableSpec(
    logical="payment-refs",
    hash_key=Key("ref"),
    ttl_attribute="expires_at",
    purpose="PayPal order id -> our order id (no eventually-consistent index read after create); "
    "webhook event ids for de-duplication (TTL)",
)

SESSIONS = TableSpec(
    logical="sessions",
    hash_key=Key("pk"),
    ttl_attribute="expires_at",
    purpose="SESSION#<id>: a sign-in (refresh token family: the current token's id, revocation); "
    "WSTICKET#<id>: single-use WebSocket connect tickets; TTL removes ended ones",
)
LIMITS = TableSpec(
    logical="limits",
    hash_key=Key("pk"),
    ttl_attribute="expires_at",
    purpose="rate-limit counters, one item per (scope, subject, window): seen by every container; TTL removes "
    "past windows. Keys spread over users, connections and sources, so no single one is hot.",
)
WAITROOM = TableSpec(
    logical="waitroom",
    hash_key=Key("pk"),
    indexes=(
        # Sparse, keys only. Pre-opening joiners in 8 shards per showtime (their draw number as the sort key):
        # the draw reads them once at opening.
        Index("by_draw", Key("draw_pk"), Key("draw", "N"), projection="KEYS_ONLY"),
        # Joiners after opening, in arrival order (a per-showtime counter): the admission ticker walks it.
        Index("by_arrival", Key("arrival_pk"), Key("seq", "N"), projection="KEYS_ONLY"),
        # Admissions not yet used up (bought, left or lapsed), by when they lapse: the ticker lapses them.
        Index("by_lapse", Key("lapse_pk"), Key("admission_expires", "N"), projection="KEYS_ONLY"),
        # Sales the ticker runs (queued showtimes from their settings until the showtime starts).
        Index("by_active", Key("active"), Key("pk"), projection="KEYS_ONLY"),
    ),
    ttl_attribute="expires_at",
    purpose="virtual waiting room (docs/waiting-room.md): SALE#<showtime> holds the on-sale settings, the "
    "ticker's state and the counters; ENTRY#<showtime>#<user> one place per account; DRAW#<showtime>#<page> the "
    "pre-opening draw's order; SEQ#<showtime> the arrival counter after opening",
)

EMAILS = TableSpec(
    logical="emails",
    hash_key=Key("key"),
    ttl_attribute="expires_at",
    purpose="one item per email the worker sends (<order id>#<kind>[#<id>]): claimed before SES is asked, marked "
    "sent after, so a redelivered job sends nothing twice; TTL removes them after a month. Keys spread over orders: "
    "no hot key.",
)

REVOCATIONS = TableSpec(
    logical="revocations",
    hash_key=Key("showtime_id"),
    range_key=Key("rev"),
    ttl_attribute="expires_at",
    purpose="e-tickets no longer valid, per showtime in the order they stopped being (`rev` = <ms>#<ticket>): the "
    "revocation list door scanners sync since a cursor; written from the tickets stream when a sold seat is "
    "refunded or voided; TTL a week after the show",
)

TABLES: tuple[TableSpec, ...] = (
    USERS,
    CATEGORIES,
    EVENTS,
    SHOWTIMES,
    TICKETS,
    CARTS,
    CONNECTIONS,
    ORDERS,
    PAYMENT_REFS,
    SESSIONS,
    LIMITS,
    EMAILS,
    WAITROOM,
    REVOCATIONS,
)

PURCHASES = QueueSpec(
    logical="purchases",
    consumer_timeout_seconds=60,
    purpose="captured orders waiting to be turned into sold tickets",
)
REFUNDS = QueueSpec(
    logical="refunds",
    consumer_timeout_seconds=60,
    purpose="refund requests waiting for the PayPal capture refund",
)

FANOUT = QueueSpec(
    logical="fanout",
    consumer_timeout_seconds=30,
    # A slice is worth posting again only while it is news: one retry, then the DLQ (and the viewers catch up
    # with a snapshot on their next reconnect).
    max_receive_count=2,
    batch_size=1,
    fifo=True,
    dlq_retention_seconds=24 * 3600,
    purpose="slices of a big room's broadcast (group <room>#<slice>), posted by parallel invocations",
)

EMAILS_QUEUE = QueueSpec(
    logical="emails",
    consumer_timeout_seconds=30,
    purpose="emails to buyers (receipts, refund and failure notices) waiting for the email worker; a job SES keeps "
    "refusing ends in the DLQ after max_receive_count tries",
)

QUEUES: tuple[QueueSpec, ...] = (PURCHASES, REFUNDS, FANOUT, EMAILS_QUEUE)


def queue(logical: str) -> QueueSpec:
    """The queue spec of a logical name. Raises KeyError."""
    return {spec.logical: spec for spec in QUEUES}[logical]
