"""E-ticket codes: signed with Ed25519, verified with the public keys alone; rotation keeps earlier tickets valid;
anything changed, unknown or malformed is one answer (forged)."""

from __future__ import annotations

import json

import pytest

from chalicelib import etickets
from chalicelib.revocations import revoked

CLAIMS = etickets.Claims(
    ticket_id="st1-A-1",
    showtime_id="st1",
    order_id="o1",
    label="Row A, seat 1",
    valid_from=1_000,
    valid_until=2_000,
    kid="",
)


def keyset(text: str | None = None) -> etickets.Keyset:
    return etickets.Keyset.parse(text or etickets.new_keyset_json())


def test_a_signed_code_verifies_with_the_public_keys_alone():
    keys = keyset()
    code = etickets.sign(keys, CLAIMS)
    claims = etickets.verify(code, keys.public())
    assert (claims.ticket_id, claims.showtime_id, claims.order_id, claims.label) == (
        "st1-A-1",
        "st1",
        "o1",
        "Row A, seat 1",
    )
    assert (claims.valid_from, claims.valid_until, claims.kid) == (1_000, 2_000, keys.current)
    assert len(code) < 300  # a small QR code


def test_rotation_keeps_yesterdays_tickets_valid_and_signs_with_the_new_key():
    old_text = etickets.new_keyset_json()
    old = keyset(old_text)
    yesterday = etickets.sign(old, CLAIMS)
    rotated = keyset(etickets.new_keyset_json(old_text))
    assert rotated.current != old.current and set(rotated.private) == {old.current, rotated.current}
    assert etickets.verify(yesterday, rotated.public()).kid == old.current
    today = etickets.sign(rotated, CLAIMS)
    assert etickets.verify(today, rotated.public()).kid == rotated.current
    with pytest.raises(etickets.TicketForged):
        etickets.verify(today, old.public())  # a scanner without the new key cannot vouch for it


def _swap_payload(code: str, **changes) -> str:
    version, kid, payload, signature = code.split(".")
    data = json.loads(etickets._unb64(payload))
    data.update(changes)
    return ".".join([version, kid, etickets._b64(json.dumps(data).encode()), signature])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: _swap_payload(c, t="st1-A-2"),  # another seat
        lambda c: _swap_payload(c, u=9_999_999),  # a longer validity
        lambda c: c[:-3] + ("AAA" if not c.endswith("AAA") else "BBB"),  # the signature
        lambda c: c.replace("T1.", "T2.", 1),
        lambda c: c.rsplit(".", 1)[0],
        lambda c: "not a code",
        lambda c: "",
        lambda c: c + "." * 2000,
        lambda c: None,
        lambda c: 42,
    ],
    ids=["seat", "validity", "signature", "version", "no-signature", "garbage", "empty", "huge", "none", "number"],
)
def test_anything_changed_or_malformed_is_forged(mangle):
    keys = keyset()
    with pytest.raises(etickets.TicketForged):
        etickets.verify(mangle(etickets.sign(keys, CLAIMS)), keys.public())


def test_a_code_signed_by_another_key_with_a_known_kid_is_forged():
    ours, theirs = keyset(), keyset()
    forged = etickets.sign(
        etickets.Keyset(current=ours.current, private={ours.current: theirs.private[theirs.current]}), CLAIMS
    )
    with pytest.raises(etickets.TicketForged):
        etickets.verify(forged, ours.public())


def test_the_time_window():
    etickets.check_time(CLAIMS, 1_500)
    with pytest.raises(etickets.TooEarly):
        etickets.check_time(CLAIMS, 999)
    with pytest.raises(etickets.TicketExpired):
        etickets.check_time(CLAIMS, 2_001)
    assert etickets.window(10_000) == (
        10_000 - etickets.DOORS_OPEN_SECONDS,
        10_000 + etickets.VALID_AFTER_START_SECONDS,
    )


def test_no_keys_no_tickets_and_a_bad_keyset_is_refused():
    with pytest.raises(etickets.TicketsUnavailable):
        etickets.sign(etickets.Keyset.parse("{}"), CLAIMS)
    with pytest.raises(ValueError):
        etickets.Keyset.parse(json.dumps({"current": "nope", "keys": json.loads(etickets.new_keyset_json())["keys"]}))


def test_public_keys_are_32_raw_bytes_each():
    keys = keyset(etickets.new_keyset_json(etickets.new_keyset_json()))
    raw = keys.public_raw()
    assert len(raw) == 2 and all(len(etickets._unb64(v)) == 32 for v in raw.values())


def _image(status: str, order: str | None) -> dict:
    image = {"showtime_id": {"S": "st1"}, "ticket_id": {"S": "st1-A-1"}, "status": {"S": status}}
    if order:
        image["order_id"] = {"S": order}
    return image


def test_the_stream_revokes_a_sale_that_ends_and_nothing_else():
    changes = [
        (_image("sold", "o1"), _image("available", None), "1"),  # refunded
        (_image("sold", "o2"), _image("void", "o2"), "2"),  # payment reversed
        (_image("sold", "o3"), {**_image("sold", "o3"), "checked_in_at": {"N": "5"}}, "3"),  # a check-in
        (_image("checkout", "o4"), _image("sold", "o4"), "4"),  # a purchase
        (_image("held", None), _image("available", None), "5"),
    ]
    records = revoked(changes, now=1_700_000_000.5)
    assert [(r.order_id, r.reason) for r in records] == [("o1", "refunded"), ("o2", "void")]
    assert records[0].cursor == "1700000000500#st1-A-1"
