"""Request and response shapes of the REST API; the OpenAPI document is generated from these."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib import queries
from chalicelib.queries import MAX_LIMIT, parse_date

# Printable, no whitespace, no control characters: a local part, an @ and a dotted domain.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]{2,}$")
_SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"


# Characters no title, description or theater name needs, and that make text lie about itself: C0/C1 controls
# (NUL included) and the bidirectional embedding, override and isolate controls (a right-to-left override makes
# "ticket.exe" read as "exe.tekcit").
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe_text(value: str, *, newlines: bool = False) -> str:
    """Refuse control and bidi-override characters (newlines and tabs only where asked for)."""
    if _UNSAFE_TEXT.search(value) or (not newlines and ("\n" in value or "\t" in value)):
        raise ValueError("contains control or text-direction characters")
    return value


def normal_email(value: str) -> str:
    """One spelling per address: NFKC (full-width and compatibility letters become plain ones) and lower case,
    so look-alike spellings of one address cannot be two accounts."""
    return unicodedata.normalize("NFKC", value).lower()


class Strict(BaseModel):
    """A request body: unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Query(BaseModel):
    """Query parameters: unknown ones are ignored, as HTTP APIs do (cache busters, tracking tags)."""

    model_config = ConfigDict(extra="ignore")


# --- auth -------------------------------------------------------------------------------------


class Credentials(Strict):
    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=1024)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = normal_email(value)
        if not _EMAIL.match(value):
            raise ValueError("not a valid email address")
        return value


class LoginIn(Strict):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normal_email(value)


class RefreshIn(Strict):
    refresh: str = Field(max_length=4096)


class PasswordChangeIn(Strict):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class SignedOutOut(BaseModel):
    status: str = Field(description="signed_out")


class WsTicketOut(BaseModel):
    ticket: str = Field(description="single use: connect with ws://.../ws?ticket=...&showtime_id=...")
    expires_in: int = Field(description="seconds")


class UserOut(BaseModel):
    id: str
    email: str


class MeOut(UserOut):
    is_staff: bool
    is_scanner: bool = Field(description="May check e-tickets in at the door (staff may too)")


class TokensOut(BaseModel):
    access: str
    refresh: str


# --- catalog ----------------------------------------------------------------------------------


class CategoryOut(BaseModel):
    slug: str
    name: str


class CategoriesOut(BaseModel):
    results: list[CategoryOut]


class EventOut(BaseModel):
    id: str
    title: str
    description: str
    category: CategoryOut
    duration_minutes: int


class EventsOut(BaseModel):
    results: list[EventOut]
    next: str | None


class EventsQuery(Query):
    """The documented shape; the route checks it with queries.events_filter (no pydantic on its cold start)."""

    category: str | None = Field(default=None, max_length=queries.CATEGORY_MAX, description="A category slug")
    category_name: str | None = Field(
        default=None, max_length=queries.CATEGORY_MAX, description="The same as category (the seed system's name)"
    )
    cursor: str | None = Field(default=None, max_length=queries.CURSOR_MAX, description="`next` of the previous page")
    limit: int = Field(default=queries.DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}")

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value: object) -> object:
        return queries.parse_limit(value)


class ShowtimeOut(BaseModel):
    showtime_id: str
    date: str
    theater: str
    starts_at: str
    available: int


class EventDetailOut(EventOut):
    showtimes: list[ShowtimeOut]


class TicketsQuery(Query):
    """The documented shape; the route checks it with queries.tickets_filter (no pydantic on its cold start)."""

    date: dt.date | None = Field(default=None, description="YYYY-MM-DD")
    theater: str | None = Field(default=None, max_length=queries.THEATER_MAX, description="Theater name, any case")

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        return None if value is None else parse_date(value)


class TicketOut(BaseModel):
    ticket_id: str
    showtime_id: str
    seat: str
    row: str
    number: int
    price: str = Field(pattern=r"^[0-9]+\.[0-9]{2}$", description="A decimal string, e.g. 12.00")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    status: Literal["available", "held", "sold"]
    mine: bool
    expires_at: str | None = None


class TicketsOut(BaseModel):
    results: list[TicketOut]


class EventIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    category: str = Field(pattern=_SLUG)
    # strict: true is not 1 minute, and "100" is not 100
    duration_minutes: int = Field(ge=1, le=1440, strict=True)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return safe_text(value)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return safe_text(value, newlines=True)


class ShowtimeIn(Strict):
    date: dt.date = Field(description="YYYY-MM-DD")
    theater: str = Field(min_length=1, max_length=100)
    starts_at: str = Field(max_length=40, description="HH:MM on the showtime's date, or an ISO 8601 datetime")
    rows: int = Field(ge=1, le=52, strict=True)
    seats_per_row: int = Field(ge=1, le=60, strict=True)
    price: Decimal = Field(gt=0, le=Decimal("100000"), decimal_places=2)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        return parse_date(value)

    @field_validator("theater")
    @classmethod
    def _theater(cls, value: str) -> str:
        value = " ".join(safe_text(value).split())
        if not value:
            raise ValueError("must not be blank")
        return value


class EventPatchIn(Strict):
    """A staff edit of an event: only the fields sent change (at least one)."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    category: str | None = Field(default=None, pattern=_SLUG)
    duration_minutes: int | None = Field(default=None, ge=1, le=1440, strict=True)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return None if value is None else safe_text(value)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return None if value is None else safe_text(value, newlines=True)

    def changes(self) -> dict:
        return self.model_dump(exclude_none=True)


class ShowtimePatchIn(Strict):
    """A staff edit of a showtime: its start, on the same date (seats, hall and price are fixed at creation)."""

    starts_at: str = Field(max_length=40, description="HH:MM on the showtime's date, or an ISO 8601 datetime")


class ScannerIn(Strict):
    """Staff give an account the door-scanner role (check-in only), or take it back."""

    email: str = Field(min_length=3, max_length=254)
    is_scanner: bool

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normal_email(value)


class ScannerOut(MeOut):
    pass


class CheckinIn(Strict):
    """A scan at the door (staff)."""

    code: str = Field(min_length=1, max_length=1024, description="The e-ticket code, as the QR code carries it")
    showtime_id: str = Field(min_length=1, max_length=64, description="The showtime this door admits to")
    door: str = Field(default="door", min_length=1, max_length=60, description="Which door scanned it")
    scanned_at: dt.datetime | None = Field(
        default=None, description="When an offline scanner admitted it (synced later); ISO 8601 with a zone"
    )

    @field_validator("door")
    @classmethod
    def _door(cls, value: str) -> str:
        return safe_text(value)

    @field_validator("scanned_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (Z or an offset)")
        return value


class CheckinOut(BaseModel):
    result: Literal["admitted"]
    ticket_id: str
    label: str
    showtime_id: str
    admitted_at: str
    door: str


class RevocationsQuery(Query):
    since: str | None = Field(default=None, max_length=100, description="The cursor of the previous answer")


class RevocationOut(BaseModel):
    ticket_id: str
    order_id: str
    reason: Literal["refunded", "void"]
    revoked_at: str


class RevocationsOut(BaseModel):
    showtime_id: str
    results: list[RevocationOut]
    cursor: str | None = Field(description="Send as `since` next time; null when there is nothing yet")
    more: bool = Field(description="More revocations wait: ask again with this cursor at once")


class PublicKeyOut(BaseModel):
    kid: str
    public_key: str = Field(description="Base64url of the 32 raw bytes of the Ed25519 public key")


class PublicKeysOut(BaseModel):
    algorithm: Literal["Ed25519"]
    format: str
    current: str | None
    keys: list[PublicKeyOut]


class ETicketOut(BaseModel):
    ticket_id: str
    seat: str
    label: str
    status: Literal["valid", "refunded", "void", "not_issued"]
    code: str | None = Field(default=None, description="The signed code (valid tickets only)")
    qr_svg: str | None = Field(default=None, description="The code as a QR image, an SVG data URI")


class OrderTicketsOut(BaseModel):
    order_id: str
    showtime_id: str
    event_title: str | None
    starts_at: str | None
    theater: str | None
    valid_from: str | None
    valid_until: str | None
    results: list[ETicketOut]


class SaleIn(Strict):
    """A showtime's on-sale settings (staff): when it opens, whether a waiting room guards it, at what pace people
    are let in."""

    on_sale_at: dt.datetime = Field(description="ISO 8601 with a time zone (Z or an offset)")
    guarded: bool = Field(description="true: buyers join a waiting room and need an admission to pick seats")
    rate_per_minute: int = Field(default=60, ge=1, le=100000, strict=True, description="admissions per minute")
    max_shopping: int = Field(
        default=0, ge=0, le=100000, strict=True, description="at most this many admitted people at once (0: no cap)"
    )

    @field_validator("on_sale_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (Z or an offset)")
        return value


class SaleControlIn(Strict):
    """Operators during a sale: pause, resume, change the rate or the cap (only the fields sent change)."""

    paused: bool | None = None
    rate_per_minute: int | None = Field(default=None, ge=1, le=100000, strict=True)
    max_shopping: int | None = Field(default=None, ge=0, le=100000, strict=True)


class SaleOut(BaseModel):
    showtime_id: str
    on_sale_at: str | None = Field(description="When seats can first be picked (null: on sale)")
    guarded: bool = Field(description="A waiting room guards the sale: join it, pick seats once admitted")
    opened: bool
    paused: bool


class AdmissionOut(BaseModel):
    token: str = Field(description='Send it as "admission" in every select message of this showtime')
    expires_at: str


class QueueStatusOut(BaseModel):
    showtime_id: str
    state: Literal["waiting", "admitted", "bought", "left", "lapsed", "vanished"]
    joined_at: str
    in_draw: bool = Field(description="Joined before opening: in the draw, ordered at random at opening")
    drawn: bool = Field(description="The draw is done (positions of the draw's entrants are known)")
    on_sale_at: str
    paused: bool
    position: int | None = Field(description="Place in the whole queue, 1 first (null before the draw)")
    ahead: int | None = Field(description="People ahead not yet reached (some may have left)")
    estimated_wait_seconds: int | None = Field(description="At the current rate (null while paused or unknown)")
    rate_per_minute: int
    poll_after_seconds: int = Field(description="Ask again after this long: polling is the heartbeat")
    admission: AdmissionOut | None


class SaleCountsOut(BaseModel):
    joined: int
    waiting: int
    admitted: int
    shopping: int = Field(description="Admitted and not yet bought, left or lapsed")
    bought: int
    left: int
    lapsed: int
    vanished: int = Field(description="Stopped polling before their turn: passed over")
    ended: int


class WaitSecondsOut(BaseModel):
    average: int | None
    longest: int | None


class SaleDashboardOut(BaseModel):
    showtime_id: str
    on_sale_at: str | None
    guarded: bool
    rate_per_minute: int
    max_shopping: int
    paused: bool
    opened: bool
    drawn: int | None = Field(description="Places in the pre-opening draw (null until it is done)")
    counts: SaleCountsOut
    wait_seconds: WaitSecondsOut
    ticked_at: str | None = Field(description="The ticker's last step")


class ShowtimeCreatedOut(ShowtimeOut):
    event_id: str
    tickets: int
    price: str
    currency: str


class StaffShowtimeOut(ShowtimeCreatedOut):
    event_title: str
    held: int = Field(description="Held by a buyer, or in a checkout")
    sold: int = Field(description="Sold and valid (not refunded, not void)")
    void: int = Field(description="Sold, then taken back through PayPal: not valid for entry")
    revenue: str = Field(description="The sum of the prices of the seats sold now (refunded seats are not sold)")


class HealthOut(BaseModel):
    status: str = Field(description="ok; unavailable (503) when the tables cannot be reached")
    checks: dict[str, str] = Field(default_factory=dict, description='e.g. {"tables": "ok"}')


class ErrorOut(BaseModel):
    code: str = Field(pattern=r"^[a-z][a-z_]*$", description="snake_case, stable: clients branch on it")
    message: str = Field(description="For humans; may change")
