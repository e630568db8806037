"""The waiting room's rules, free of storage: the draw's order, the ticker's admission budget, where a place
stands, and the signed admission (docs/waiting-room.md).

A place is one of two kinds. Everyone who joined before the on-sale time is in the draw: their place holds a
random number given by the server when they joined, and at opening the draw orders them by it (so arriving early
before opening buys nothing, and nobody can pick their number). Everyone after opening gets the next number of the
showtime's arrival counter and queues behind the whole draw, in arrival order.
"""

from __future__ import annotations

import math
import secrets
import zlib
from typing import NamedTuple

from chalicelib.errors import Forbidden

ADMISSION_AUDIENCE = "tickets-admission"  # never accepted where an access token is expected, nor the reverse
ALGORITHM = "HS256"  # pinned, as for access tokens
DRAW_SHARDS = 8  # partitions of the pre-opening index per showtime (docs/waiting-room.md, "Hot keys")
DRAW_BITS = 62
# States of a place.
WAITING, ADMITTED, BOUGHT, LEFT, LAPSED, VANISHED = "waiting", "admitted", "bought", "left", "lapsed", "vanished"
ENDED = (BOUGHT, LEFT, LAPSED, VANISHED)
# The ticker never owes more than this many seconds of admissions: after a pause or an outage it resumes at the
# rate instead of letting a burst through.
MAX_ALLOWANCE_SECONDS = 10


class AdmissionRequired(Forbidden):
    code = "admission_required"
    default_message = "This showtime has a waiting room: join it and wait for your turn to pick seats."


class AdmissionInvalid(Forbidden):
    code = "admission_invalid"
    default_message = "This admission is not valid for you and this showtime (forged, someone else's or replaced)."


class AdmissionLapsed(Forbidden):
    code = "admission_lapsed"
    default_message = "Your turn to pick seats has ended; join the queue again."


class NotOnSale(Forbidden):
    code = "not_on_sale"
    default_message = "This showtime is not on sale yet."


def new_draw_number() -> int:
    """A uniformly random number from the operating system's generator; ties (2**-62) fall back to the user id."""
    return secrets.randbits(DRAW_BITS)


def draw_shard(user_id: str) -> int:
    """Which of the showtime's draw partitions a place is written to (spread, stable per user)."""
    return zlib.crc32(user_id.encode("utf-8")) % DRAW_SHARDS


def draw_order(places: list[tuple[int, str]]) -> list[str]:
    """The draw: (draw number, user id) pairs ordered by number, user ids out."""
    return [user_id for _, user_id in sorted(places)]


class Budget(NamedTuple):
    admit: int  # admissions this tick may give
    allowance: float  # what carries over to the next tick


def budget(
    *,
    allowance: float,
    rate_per_minute: float,
    elapsed: float,
    paused: bool,
    max_shopping: int | None,
    shopping: int,
) -> Budget:
    """Admissions owed after `elapsed` seconds at the rate (fractions carry over), never more than the cap on
    people shopping at once leaves room for. Paused: nothing, and nothing accumulates."""
    if paused or rate_per_minute <= 0:
        return Budget(0, 0.0)
    ceiling = max(1.0, rate_per_minute * MAX_ALLOWANCE_SECONDS / 60)
    owed = min(ceiling, allowance + rate_per_minute * max(0.0, elapsed) / 60)
    admit = math.floor(owed + 1e-9)  # 0.9999999 of an admission after float arithmetic is one
    if max_shopping:
        admit = max(0, min(admit, max_shopping - shopping))
        if admit == 0:
            owed = min(owed, 1.0)  # the cap, not the rate, holds people back: do not bank a burst meanwhile
    return Budget(admit, owed - admit)


def estimated_wait(ahead: int, rate_per_minute: float, paused: bool) -> int | None:
    """Seconds until a place `ahead` people back is reached at the rate (None while paused or without a rate)."""
    if paused or rate_per_minute <= 0:
        return None
    return math.ceil(ahead * 60 / rate_per_minute)


def poll_after(ahead: int | None, rate_per_minute: float) -> int:
    """How long a waiting client should wait before asking again: often when its turn is near, rarely when far.
    Always well under the heartbeat timeout, so a client that polls as told never vanishes."""
    if ahead is None or rate_per_minute <= 0:
        return 10
    minutes_away = ahead / rate_per_minute
    return int(min(20, max(3, minutes_away * 6)))


def poll_before_draw(until_opening: float) -> int:
    """Before the draw a place has no number to watch: rarely while opening is far, often as it comes."""
    return 20 if until_opening > 60 else 5


# --- admissions --------------------------------------------------------------------------------------------------


def sign_admission(
    secret: str, *, user_id: str, showtime_id: str, admission_id: str, expires_at: int, issuer: str
) -> str:
    import jwt  # lazily, as in chalicelib.auth

    claims = {
        "sub": user_id,
        "sid": showtime_id,
        "jti": admission_id,
        "exp": expires_at,
        "aud": ADMISSION_AUDIENCE,
        "iss": issuer,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_admission(token: object, secret: str, *, user_id: str, showtime_id: str, issuer: str, now: float) -> str:
    """The admission id of a token signed by us for this user and showtime, not expired. Raises AdmissionRequired
    (no token), AdmissionLapsed (expired) or AdmissionInvalid (anything else)."""
    if token is None or token == "":
        raise AdmissionRequired()
    if not isinstance(token, str) or len(token) > 1024:
        raise AdmissionInvalid()
    import jwt  # lazily, as in chalicelib.auth

    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=ADMISSION_AUDIENCE,
            issuer=issuer,
            options={"require": ["exp", "sub", "sid", "jti", "aud", "iss"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise AdmissionInvalid() from None
    if claims.get("sub") != user_id or claims.get("sid") != showtime_id or not isinstance(claims.get("jti"), str):
        raise AdmissionInvalid()
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        raise AdmissionLapsed()
    return claims["jti"]
