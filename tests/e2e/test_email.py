"""Buyer emails on the running stack: a purchase through REST, WebSockets and the emulator's page ends in a receipt
that the local outbox (`/local/outbox`, read from moto's SES) shows; the buyer can have it sent again."""

from __future__ import annotations

import requests

from tests.support.payflow import TIMEOUT, Buyer, free_seats, wait_until


def outbox(stack, address: str) -> list[dict]:
    answer = requests.get(f"{stack.base_url}/local/outbox.json", timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return [m for m in answer.json()["results"] if address in m["to"]]


def test_a_purchase_ends_in_a_receipt_in_the_outbox_and_the_buyer_can_have_it_again(stack, showtime, emulator):
    buyer = Buyer(stack)
    address = buyer.user["email"]
    seats = free_seats(stack, showtime, 2)

    order = buyer.buy(showtime, seats)

    [receipt] = wait_until(lambda: outbox(stack, address), what="the receipt in the outbox")
    assert receipt["subject"].startswith("Your tickets for ")
    for ticket in order["tickets"]:
        assert ticket["label"] in receipt["body"]
    assert f"{stack.base_url}/#/orders/{order['order_id']}" in receipt["body"]
    page = requests.get(f"{stack.base_url}/local/outbox", timeout=TIMEOUT)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert receipt["subject"] in page.text

    answer = buyer.call("POST", f"orders/{order['order_id']}/resend/")
    assert (answer.status_code, answer.json()) == (202, {"order_id": order["order_id"], "status": "queued"})
    again = wait_until(lambda: [m for m in outbox(stack, address) if m["id"] != receipt["id"]], what="the resend")
    assert again[0]["body"] == receipt["body"]
    stranger = Buyer(stack)
    assert stranger.call("POST", f"orders/{order['order_id']}/resend/").status_code == 404
