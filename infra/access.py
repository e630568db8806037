"""What each Lambda function may touch: the least-privilege map the stack turns into one IAM role per function.

Chalice's generated policy cannot see pynamodb/boto3 calls, so this map is maintained by hand next to the code:
when a handler starts using another table, queue or secret, add it here (tests/infra fails for a function the
app defines but this map does not list). Event sources need no entry: a function that an SQS queue or a
DynamoDB stream triggers is granted exactly that consumption by the stack, read from the Chalice template.

The limits table: chalicelib.limits.RateLimiter fails open when it cannot count, so a function that checks
limits without WRITE on it would silently have none. It is granted to every function that counts a limit.

Keys are Chalice's resource names: the handler function name in CamelCase (`tickets_changed` ->
`TicketsChanged`), `APIHandler` for every REST route, `Websocket{Connect,Message,Disconnect}` for WebSockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib import tables

READ = "read"  # GetItem, BatchGetItem, Query, Scan, ConditionCheckItem, DescribeTable (table and its indexes)
WRITE = "write"  # READ plus PutItem, UpdateItem, DeleteItem, BatchWriteItem

JWT = "jwt"  # signs and verifies access / refresh tokens
PAYPAL = "paypal"  # PayPal REST client id + secret
TICKET_KEYS = "ticket-keys"  # Ed25519 keys that sign e-tickets (chalicelib/etickets.py)


@dataclass(frozen=True)
class FunctionAccess:
    tables: dict[str, str] = field(default_factory=dict)  # table logical name -> READ | WRITE
    sends_to: tuple[str, ...] = ()  # queue logical names the function sends messages to
    secrets: tuple[str, ...] = ()  # JWT, PAYPAL
    posts_to_connections: bool = False  # execute-api:ManageConnections on this stage's WebSocket API
    sends_email: bool = False  # ses:SendEmail from the stage's sender identity only
    purpose: str = ""


FUNCTIONS: dict[str, FunctionAccess] = {
    "APIHandler": FunctionAccess(
        tables={
            tables.USERS.logical: WRITE,
            tables.CATEGORIES.logical: READ,
            tables.EVENTS.logical: WRITE,
            tables.SHOWTIMES.logical: WRITE,
            tables.TICKETS.logical: WRITE,
            tables.CARTS.logical: WRITE,
            tables.ORDERS.logical: WRITE,
            tables.PAYMENT_REFS.logical: WRITE,
            tables.SESSIONS.logical: WRITE,
            tables.CONNECTIONS.logical: WRITE,
            tables.LIMITS.logical: WRITE,
            tables.WAITROOM.logical: WRITE,
            tables.REVOCATIONS.logical: READ,
        },
        sends_to=(tables.PURCHASES.logical, tables.REFUNDS.logical, tables.EMAILS_QUEUE.logical),
        secrets=(JWT, PAYPAL, TICKET_KEYS),
        posts_to_connections=True,
        purpose="every REST route: accounts, catalog (staff writes), cart, checkout, execute, refund, webhook; "
        "counts sign-in and registration limits; sessions (refresh rotation, sign-out, password change, WebSocket "
        "tickets); closes the sockets of a session that ended (Management API DeleteConnection); queues a "
        "buyer's receipt again on request, and the notice of a payment declined at execute or by webhook",
    ),
    "WebsocketConnect": FunctionAccess(
        tables={
            tables.SHOWTIMES.logical: READ,
            tables.USERS.logical: READ,
            tables.SESSIONS.logical: WRITE,
            tables.CONNECTIONS.logical: WRITE,
            tables.LIMITS.logical: WRITE,
        },
        secrets=(JWT,),
        purpose="takes the single-use ticket (or verifies the token and its session), resolves the room, stores "
        "the connection; claims a place under the user's socket cap",
    ),
    "WebsocketDisconnect": FunctionAccess(
        tables={tables.CONNECTIONS.logical: WRITE, tables.LIMITS.logical: WRITE},
        purpose="deletes the connection row and gives back its place under the user's socket cap",
    ),
    "WebsocketMessage": FunctionAccess(
        tables={
            tables.TICKETS.logical: WRITE,
            tables.CARTS.logical: WRITE,
            tables.CONNECTIONS.logical: WRITE,
            tables.LIMITS.logical: WRITE,
            tables.USERS.logical: READ,
            tables.SESSIONS.logical: READ,
            tables.WAITROOM.logical: READ,
        },
        secrets=(JWT,),
        posts_to_connections=True,
        purpose="select / unselect / snapshot, the reply to the sender (a 410 deletes the row); counts message and "
        "hold limits; checks the socket's session is still live (closes it when not); in a guarded showtime verifies "
        "the admission (signed with the JWT secret) and reads the caller's place in the waiting room",
    ),
    "TicketsChanged": FunctionAccess(
        tables={tables.CONNECTIONS.logical: WRITE, tables.REVOCATIONS.logical: WRITE},
        sends_to=(tables.FANOUT.logical,),
        posts_to_connections=True,
        purpose="tickets stream -> one ticket_status post per connection of the room (410 deletes the row); a "
        "room above FANOUT_SLICE_SIZE goes to the fan-out queue in slices instead; a sold seat refunded or voided "
        "revokes its e-ticket (the doors' revocation list)",
    ),
    "FanoutWorker": FunctionAccess(
        tables={tables.CONNECTIONS.logical: WRITE},
        posts_to_connections=True,
        purpose="fan-out queue: posts one slice of a big room's ticket_status to its connections (410 deletes the row)",
    ),
    "SweepExpired": FunctionAccess(
        tables={
            tables.TICKETS.logical: WRITE,
            tables.CARTS.logical: WRITE,
            tables.ORDERS.logical: WRITE,
        },
        sends_to=(tables.PURCHASES.logical, tables.REFUNDS.logical, tables.EMAILS_QUEUE.logical),
        secrets=(PAYPAL,),
        purpose="releases expired holds and expires unpaid orders; an order PayPal captured meanwhile, or a "
        "captured order whose purchase message was lost, is handed to the purchase worker; refunds left "
        "pending are re-sent to the refund worker; a capture found declined queues the buyer's notice",
    ),
    "PurchaseWorker": FunctionAccess(
        tables={
            tables.TICKETS.logical: WRITE,
            tables.CARTS.logical: WRITE,
            tables.ORDERS.logical: WRITE,
            tables.WAITROOM.logical: WRITE,
        },
        sends_to=(tables.EMAILS_QUEUE.logical,),
        secrets=(PAYPAL,),
        purpose="purchases queue: tickets checkout -> sold, order -> paid; refunds a capture whose seats were lost; "
        "queues the buyer's receipt or failure notice; a buyer admitted through a waiting room frees their place",
    ),
    "RefundWorker": FunctionAccess(
        tables={tables.TICKETS.logical: WRITE, tables.ORDERS.logical: WRITE},
        sends_to=(tables.EMAILS_QUEUE.logical,),
        secrets=(PAYPAL,),
        purpose="refunds queue: PayPal capture refund, order status, refunded tickets -> available; queues the "
        "buyer's refund notice",
    ),
    "EmailWorker": FunctionAccess(
        tables={
            tables.ORDERS.logical: READ,
            tables.USERS.logical: READ,
            tables.EMAILS.logical: WRITE,
            tables.SHOWTIMES.logical: READ,
        },
        sends_email=True,
        secrets=(TICKET_KEYS,),
        purpose="emails queue: reads the order and the buyer's address, claims the email's key, sends it through "
        "SES from the stage's sender, marks it sent; signs the receipt's e-ticket codes (the showing's start from "
        "the showtime for orders that predate it)",
    ),
    "WaitroomTick": FunctionAccess(
        tables={tables.WAITROOM.logical: WRITE},
        purpose="every minute, stepping every few seconds for 50 s: the waiting rooms' draws at opening, lapsed "
        "admissions, admissions at each sale's rate",
    ),
}

# Functions the app is expected to define; tests/infra checks this list against the synthesized template.
EXPECTED_FUNCTIONS: tuple[str, ...] = (
    "APIHandler",
    "WebsocketConnect",
    "WebsocketDisconnect",
    "WebsocketMessage",
    "TicketsChanged",
    "SweepExpired",
    "PurchaseWorker",
    "RefundWorker",
    "FanoutWorker",
    "EmailWorker",
    "WaitroomTick",
)
