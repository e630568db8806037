"""Request and response shapes of the REST API; the OpenAPI document is generated from these."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# --- auth -------------------------------------------------------------------------------------


class Credentials(Strict):
    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=1024)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("not a valid email address")
        return value.lower()


class LoginIn(Strict):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class RefreshIn(Strict):
    refresh: str = Field(max_length=4096)


class UserOut(BaseModel):
    id: str
    email: str


class MeOut(UserOut):
    is_staff: bool


class TokensOut(BaseModel):
    access: str
    refresh: str


class AccessOut(BaseModel):
    access: str


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


class EventsQuery(Strict):
    category: str | None = Field(default=None, max_length=64)
    category_name: str | None = Field(default=None, max_length=64)
    cursor: str | None = Field(default=None, max_length=2048)
    limit: int = Field(default=20, ge=1, le=100)


class ShowtimeOut(BaseModel):
    showtime_id: str
    date: str
    theater: str
    starts_at: str
    available: int


class EventDetailOut(EventOut):
    showtimes: list[ShowtimeOut]


class TicketsQuery(Strict):
    date: dt.date | None = None
    theater: str | None = Field(default=None, max_length=100)


class TicketOut(BaseModel):
    ticket_id: str
    showtime_id: str
    seat: str
    row: str
    number: int
    price: str
    currency: str
    status: Literal["available", "held", "sold"]
    mine: bool
    expires_at: str | None = None


class TicketsOut(BaseModel):
    results: list[TicketOut]


class EventIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    category: str = Field(pattern=_SLUG)
    duration_minutes: int = Field(ge=1, le=1440)


class ShowtimeIn(Strict):
    date: dt.date
    theater: str = Field(min_length=1, max_length=100)
    starts_at: str = Field(max_length=40, description="HH:MM on the showtime's date, or an ISO 8601 datetime")
    rows: int = Field(ge=1, le=52)
    seats_per_row: int = Field(ge=1, le=60)
    price: Decimal = Field(gt=0, le=Decimal("100000"), decimal_places=2)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

    @field_validator("theater")
    @classmethod
    def _theater(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("must not be blank")
        return value


class ShowtimeCreatedOut(ShowtimeOut):
    event_id: str
    tickets: int
    price: str
    currency: str


class HealthOut(BaseModel):
    status: str


class ErrorOut(BaseModel):
    code: str
    message: str
