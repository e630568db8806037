"""E-tickets and the door against the running stack: buy, read the tickets, scan each once and twice, scan a
refunded one, forged ones and another showtime's, verify offline with the published keys and the revocation
list, and one ticket scanned at two doors at once."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.support.payflow import Buyer, Showtime, free_seats, wait_until
from tests.support.rooms import suite_event

pytestmark = pytest.mark.e2e


def soon_showtime(stack, staff: str, minutes: int = 90) -> Showtime:
    """A showtime starting in `minutes` (doors open 3 h before a start; refunds close 1 h before it)."""
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    event_id = suite_event(stack)
    theater = f"Door {uuid.uuid4().hex[:6]}"
    response = requests.post(
        stack.api(f"events/{event_id}/showtimes/"),
        json={
            "date": starts.date().isoformat(),
            "theater": theater,
            "starts_at": starts.strftime("%H:%M"),
            "rows": 1,
            "seats_per_row": 6,
            "price": "9.00",
        },
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return Showtime(event_id, response.json()["showtime_id"], starts.date().isoformat(), theater)


def scan(stack, staff: str, code: str, showtime_id: str, door: str = "north", **extra) -> requests.Response:
    return requests.post(
        stack.api("checkin/"),
        json={"code": code, "showtime_id": showtime_id, "door": door, **extra},
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_buy_scan_once_twice_refunded_forged_and_other_showtime(stack):
    staff = stack.staff_token()
    showtime = soon_showtime(stack, staff)
    other = soon_showtime(stack, staff)
    buyer = Buyer(stack)
    order = buyer.buy(showtime, free_seats(stack, showtime, 3))
    tickets = buyer.call("GET", f"orders/{order['order_id']}/tickets/")
    assert tickets.status_code == 200, tickets.text
    listed = tickets.json()["results"]
    assert [t["status"] for t in listed] == ["valid"] * 3
    assert all(t["qr_svg"].startswith("data:image/svg+xml") and t["code"].startswith("T1.") for t in listed)
    assert Buyer(stack).call("GET", f"orders/{order['order_id']}/tickets/").status_code == 404  # not yours

    first, second, third = (t["code"] for t in listed)
    admitted = scan(stack, staff, first, showtime.showtime_id, door="north")
    assert admitted.status_code == 200 and admitted.json()["result"] == "admitted", admitted.text
    again = scan(stack, staff, first, showtime.showtime_id, door="south")
    assert again.status_code == 409 and again.json()["code"] == "already_admitted"
    assert again.json()["door"] == "north" and again.json()["first_admitted_at"] == admitted.json()["admitted_at"]

    assert scan(stack, staff, second, other.showtime_id).json()["code"] == "wrong_showtime"
    version, kid, payload, signature = second.split(".")
    forged = f"{version}.{kid}.{payload}.{signature[:-4]}AAAA"
    assert scan(stack, staff, forged, showtime.showtime_id).json()["code"] == "ticket_forged"
    assert scan(stack, staff, "T1.nope.e30.AAAA", showtime.showtime_id).status_code == 422
    buyer_scan = scan(stack, buyer.user["access"], second, showtime.showtime_id)
    assert buyer_scan.status_code == 403  # staff only

    # Refund the third seat: its code stops scanning, and the revocation list says so.
    refunded_id = listed[2]["ticket_id"]
    assert buyer.refund(order["order_id"], [refunded_id]).status_code == 202
    buyer.wait_order(order["order_id"], "partially_refunded")
    refused = scan(stack, staff, third, showtime.showtime_id)
    assert refused.status_code == 409 and refused.json()["code"] == "ticket_refunded"
    after = buyer.call("GET", f"orders/{order['order_id']}/tickets/").json()["results"]
    assert [t["status"] for t in after] == ["valid", "valid", "refunded"] and after[2].get("code") is None

    def revocations(since=None):
        params = {"since": since} if since else {}
        response = requests.get(
            stack.api(f"checkin/showtimes/{showtime.showtime_id}/revocations/"),
            params=params,
            headers={"Authorization": f"Bearer {staff}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()

    listing = wait_until(lambda: revocations() if revocations()["results"] else None, what="the revocation")
    assert {(r["ticket_id"], r["order_id"], r["reason"]) for r in listing["results"]} == {
        (refunded_id, order["order_id"], "refunded")
    }
    # The cursor stays a minute behind (concurrent stream handlers date their writes): the fresh revocation is
    # listed again, never skipped.
    assert listing["cursor"] is None
    assert [r["ticket_id"] for r in revocations(listing["cursor"])["results"]] == [refunded_id]

    # Offline: the published key verifies a code's signature, and the revocation list names the refunded one.
    keys = requests.get(stack.api("checkin/keys/"), timeout=30).json()
    public = {k["kid"]: Ed25519PublicKey.from_public_bytes(unb64(k["public_key"])) for k in keys["keys"]}
    version, kid, payload, signature = second.split(".")
    public[kid].verify(unb64(signature), f"{version}.{kid}.{payload}".encode())

    # A scanner that was offline syncs its scan later: admitted as of when it scanned.
    offline_at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)
    synced = scan(stack, staff, second, showtime.showtime_id, door="east", scanned_at=offline_at.isoformat())
    assert synced.status_code == 200, synced.text
    assert synced.json()["admitted_at"] == offline_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_one_ticket_at_two_doors_at_once_is_admitted_once(stack):
    staff = stack.staff_token()
    showtime = soon_showtime(stack, staff)
    buyer = Buyer(stack)
    order = buyer.buy(showtime, free_seats(stack, showtime, 1))
    (ticket,) = buyer.call("GET", f"orders/{order['order_id']}/tickets/").json()["results"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: scan(stack, staff, ticket["code"], showtime.showtime_id, door=f"door-{n}"), range(8))
        )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 7
    doors = {a.json()["door"] for a in answers}
    assert len(doors) == 1  # every refusal names the one door that admitted it


def test_too_early(stack):
    staff = stack.staff_token()
    later = soon_showtime(stack, staff, minutes=5 * 60)  # doors open in 2 h
    buyer = Buyer(stack)
    order = buyer.buy(later, free_seats(stack, later, 2))
    codes = [t["code"] for t in buyer.call("GET", f"orders/{order['order_id']}/tickets/").json()["results"]]
    early = scan(stack, staff, codes[0], later.showtime_id)
    assert early.status_code == 422 and early.json()["code"] == "too_early"
    # A time from the future does not open the doors early: the window is judged at min(scanned_at, now).
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).isoformat()
    assert scan(stack, staff, codes[1], later.showtime_id, scanned_at=at).json()["code"] == "too_early"


def test_door_staff_scan_and_nothing_more(stack):
    staff = stack.staff_token()
    showtime = soon_showtime(stack, staff)
    buyer = Buyer(stack)
    order = buyer.buy(showtime, free_seats(stack, showtime, 1))
    (ticket,) = buyer.call("GET", f"orders/{order['order_id']}/tickets/").json()["results"]
    door = stack.register()
    assert scan(stack, door["access"], ticket["code"], showtime.showtime_id).status_code == 403

    def grant(email: str, is_scanner: bool, token: str = staff) -> requests.Response:
        return requests.post(
            stack.api("staff/scanners/"),
            json={"email": email, "is_scanner": is_scanner},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    assert grant(door["email"], True, token=door["access"]).status_code == 403  # only staff grant it
    assert grant("nobody-here@example.com", True).status_code == 404
    granted = grant(door["email"], True)
    assert granted.status_code == 200 and granted.json()["is_scanner"] is True
    me = requests.get(stack.api("auth/me/"), headers={"Authorization": f"Bearer {door['access']}"}, timeout=30)
    assert me.json()["is_scanner"] is True and me.json()["is_staff"] is False
    assert scan(stack, door["access"], ticket["code"], showtime.showtime_id, door="side").status_code == 200
    revocations = requests.get(
        stack.api(f"checkin/showtimes/{showtime.showtime_id}/revocations/"),
        headers={"Authorization": f"Bearer {door['access']}"},
        timeout=30,
    )
    assert revocations.status_code == 200
    # Nothing else staff may do: orders of others, the staff showtime report, granting the role.
    for path in ("staff/orders/?email=someone@example.com", f"staff/showtimes/{showtime.showtime_id}/"):
        assert (
            requests.get(stack.api(path), headers={"Authorization": f"Bearer {door['access']}"}, timeout=30).status_code
            == 403
        )
    assert grant(door["email"], False).json()["is_scanner"] is False
    assert scan(stack, door["access"], ticket["code"], showtime.showtime_id).status_code == 403
