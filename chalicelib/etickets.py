"""E-ticket codes (issue 15): what a QR code carries, signed with Ed25519 so a door verifies it without a network.

A code is `T1.<kid>.<payload>.<signature>`, base64url without padding: `payload` is compact JSON
`{"t": ticket, "s": showtime, "o": order, "l": seat label, "f": valid from, "u": valid until}` (epoch seconds)
and the signature covers `T1.<kid>.<payload>`. `kid` names the key of the keyset that signed it: rotating adds a
key and makes it current, and every key of the set still verifies, so yesterday's tickets stay valid. Nothing
here touches AWS: the keyset comes from the secret store (chalicelib/wiring.py) or, locally, the data folder.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import UTC, datetime
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chalicelib.errors import Conflict, Unavailable, Unprocessable

VERSION = "T1"
DOORS_OPEN_SECONDS = 3 * 3600  # a ticket scans from this long before its showtime starts
VALID_AFTER_START_SECONDS = 6 * 3600  # and until this long after
MAX_CODE_LENGTH = 1024


class TicketForged(Unprocessable):
    code = "ticket_forged"
    default_message = "This code was not issued by us (or was changed): do not admit."


class WrongShowtime(Unprocessable):
    code = "wrong_showtime"
    default_message = "This ticket is for another showtime."


class TooEarly(Unprocessable):
    code = "too_early"
    default_message = "Doors are not open for this ticket's showtime yet."


class TicketExpired(Unprocessable):
    code = "ticket_expired"
    default_message = "This ticket's showtime is over."


class TicketRefunded(Conflict):
    code = "ticket_refunded"
    default_message = "This ticket was refunded: it is not valid."


class TicketVoid(Conflict):
    code = "ticket_void"
    default_message = "This ticket was voided (its payment was taken back): it is not valid."


class AlreadyAdmitted(Conflict):
    code = "already_admitted"
    default_message = "This ticket was already admitted."

    def __init__(self, admitted_at: int, door: str | None) -> None:
        super().__init__(f"Already admitted at {door or 'a door'}.")
        self.admitted_at = admitted_at
        self.door = door


class TicketsUnavailable(Unavailable):
    code = "tickets_unavailable"
    default_message = "E-tickets cannot be issued right now (no signing key is configured)."


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Claims(NamedTuple):
    ticket_id: str
    showtime_id: str
    order_id: str
    label: str
    valid_from: int
    valid_until: int
    kid: str


class Keyset(NamedTuple):
    """Private keys by id and the one that signs now. From JSON `{"current": kid, "keys": {kid: base64 raw}}`."""

    current: str
    private: dict[str, Ed25519PrivateKey]

    @classmethod
    def parse(cls, text: str) -> Keyset:
        data = json.loads(text or "{}")
        keys = {kid: Ed25519PrivateKey.from_private_bytes(_unb64(raw)) for kid, raw in (data.get("keys") or {}).items()}
        current = data.get("current") or ""
        if keys and current not in keys:
            raise ValueError("the keyset's current key is not one of its keys")
        return cls(current=current, private=keys)

    @property
    def usable(self) -> bool:
        return bool(self.current)

    def public(self) -> dict[str, Ed25519PublicKey]:
        return {kid: key.public_key() for kid, key in self.private.items()}

    def public_raw(self) -> dict[str, str]:
        """Each public key as base64url of its 32 raw bytes (what WebCrypto's Ed25519 `importKey('raw')` takes)."""
        return {
            kid: _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw)) for kid, key in sorted(self.public().items())
        }


def new_keyset_json(previous: str | None = None) -> str:
    """A keyset with a fresh key made current; the previous keyset's keys are kept (rotation)."""
    data = json.loads(previous or "{}")
    keys = dict(data.get("keys") or {})
    kid = f"k{secrets.token_hex(4)}"
    keys[kid] = _b64(Ed25519PrivateKey.generate().private_bytes_raw())
    return json.dumps({"current": kid, "keys": keys}, sort_keys=True)


def sign(keyset: Keyset, claims: Claims) -> str:
    if not keyset.usable:
        raise TicketsUnavailable()
    payload = json.dumps(
        {
            "t": claims.ticket_id,
            "s": claims.showtime_id,
            "o": claims.order_id,
            "l": claims.label,
            "f": claims.valid_from,
            "u": claims.valid_until,
        },
        separators=(",", ":"),
    )
    signed = f"{VERSION}.{keyset.current}.{_b64(payload.encode('utf-8'))}"
    signature = keyset.private[keyset.current].sign(signed.encode("ascii"))
    return f"{signed}.{_b64(signature)}"


def verify(code: object, public: dict[str, Ed25519PublicKey]) -> Claims:
    """The claims of a code one of `public` signed. Raises TicketForged for anything else (malformed, unknown
    key, changed payload, bad signature): a door needs one answer, do not admit."""
    if not isinstance(code, str) or len(code) > MAX_CODE_LENGTH:
        raise TicketForged()
    parts = code.strip().split(".")
    if len(parts) != 4 or parts[0] != VERSION or parts[1] not in public:
        raise TicketForged()
    try:
        public[parts[1]].verify(_unb64(parts[3]), ".".join(parts[:3]).encode("ascii"))
        data = json.loads(_unb64(parts[2]))
        return Claims(
            ticket_id=str(data["t"]),
            showtime_id=str(data["s"]),
            order_id=str(data["o"]),
            label=str(data["l"]),
            valid_from=int(data["f"]),
            valid_until=int(data["u"]),
            kid=parts[1],
        )
    except (InvalidSignature, ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise TicketForged() from None


def window(starts_at_epoch: int) -> tuple[int, int]:
    """(valid from, valid until) of a showtime's tickets."""
    return starts_at_epoch - DOORS_OPEN_SECONDS, starts_at_epoch + VALID_AFTER_START_SECONDS


def check_time(claims: Claims, now: float) -> None:
    if now < claims.valid_from:
        opens = datetime.fromtimestamp(claims.valid_from, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise TooEarly(f"Doors are not open for this ticket's showtime yet: it scans from {opens}.")
    if now > claims.valid_until:
        raise TicketExpired()
