"""Buyer emails end to end below HTTP: the purchase and refund workers queue them, app.email_worker (fed real SQS
batches) sends them through moto's SES, and what SES sent is read back from moto (`/moto-api/data.json`, as the
outbox page does). Exactly one email per key under redelivery; an email SES refuses is retried, then dead-lettered.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from chalice.test import Client

from chalicelib import etickets, holds, tables, wiring
from chalicelib.etickets import Keyset
from chalicelib.storage.emails import Claim, EmailLedger
from chalicelib.storage.models import Ticket
from local.gateway import lambda_context
from local.outbox import sent_mail
from tests.support.payflow import approve_on_page, webhook_event
from tests.support.tables import TEST_TICKET_KEYS

PASSWORD = "email-worker-password"


def _buyer(shop) -> tuple[str, str]:
    """A registered buyer: (user id, address)."""
    email = f"buyer-{uuid.uuid4().hex[:10]}@example.com"
    return shop.container.accounts.register(email, PASSWORD).id, email


def _token(shop, email: str) -> str:
    return shop.container.accounts.login(email, PASSWORD)["access"]


def mail_to(lab, address: str) -> list[dict]:
    return [m for m in sent_mail(lab.endpoint) if address in m["to"]]


def work(app_module, shop, logical: str, handler, order_id: str) -> tuple[dict, list[dict]]:
    """One batch of this order's messages on `logical`, handed to `handler`; returns its answer and the messages."""
    messages = shop.receive_for(logical, order_id)
    return handler(shop.sqs_event(logical, messages), lambda_context(f"{logical}_worker")), messages


def paid(app_module, shop, user_id: str, seats: list[str]) -> str:
    """An order made paid by the purchase worker itself (which queues the receipt)."""
    created = shop.captured(user_id, seats)
    answer, _ = work(app_module, shop, "purchases", app_module.purchase_worker, created["order_id"])
    assert answer == {"batchItemFailures": []}
    assert shop.order(created["order_id"]).status == "paid"
    return created["order_id"]


def test_a_paid_order_sends_one_receipt_naming_the_seats(app_module, lab, shop):
    user_id, address = _buyer(shop)
    order_id = paid(app_module, shop, user_id, shop.seats[:2])

    answer, messages = work(app_module, shop, "emails", app_module.email_worker, order_id)

    assert answer == {"batchItemFailures": []}
    assert [json.loads(m["Body"])["kind"] for m in messages] == ["receipt"]
    [receipt] = mail_to(lab, address)
    assert receipt["subject"] == "Your tickets for Pay"
    assert receipt["from"] == "tickets@example.com"
    for label in ("Row A, seat 1", "Row A, seat 2", "20.00 USD", f"/#/orders/{order_id}"):
        assert label in receipt["body"]
    assert "Row A, seat 3" not in receipt["body"]
    # The e-ticket codes, each verifiable with the published keys (the door can type one in).
    codes = re.findall(r"T1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", receipt["body"])
    public = Keyset.parse(TEST_TICKET_KEYS).public()
    assert sorted(etickets.verify(code, public).label for code in codes) == ["Row A, seat 1", "Row A, seat 2"]


def test_a_redelivered_email_job_sends_nothing_more(app_module, lab, shop):
    user_id, address = _buyer(shop)
    order_id = paid(app_module, shop, user_id, shop.seats[:1])
    messages = shop.receive_for("emails", order_id)
    event = shop.sqs_event("emails", messages)

    for _ in range(3):
        assert app_module.email_worker(event, lambda_context("emails_worker")) == {"batchItemFailures": []}

    assert len(mail_to(lab, address)) == 1


def test_a_redelivered_purchase_queues_the_same_receipt_again_and_it_is_sent_once(app_module, lab, shop):
    user_id, address = _buyer(shop)
    created = shop.captured(user_id, shop.seats[:1])
    purchase = shop.receive_for("purchases", created["order_id"])
    for _ in range(2):  # the second delivery finds the order paid and queues the receipt again
        app_module.purchase_worker(shop.sqs_event("purchases", purchase), lambda_context("purchases_worker"))

    jobs = []
    while len(jobs) < 2:
        jobs += shop.receive_for("emails", created["order_id"])
    assert len({json.loads(m["Body"])["key"] for m in jobs}) == 1
    app_module.email_worker(shop.sqs_event("emails", jobs), lambda_context("emails_worker"))

    assert len(mail_to(lab, address)) == 1


def test_an_email_ses_refuses_is_retried_then_dead_lettered(app_module, lab):
    shop = lab.shop(EMAIL_SENDER="not-verified@unknown.example")
    user_id, address = _buyer(shop)
    previous = wiring._container
    wiring._container = shop.container  # the workers of this stage: its queues, a sender SES has not verified
    try:
        order_id = paid(app_module, shop, user_id, shop.seats[:1])
        messages = shop.receive_for("emails", order_id)
        # A whole batch that failed fails the invocation (powertools): every message of it comes back.
        with pytest.raises(BatchProcessingError):
            app_module.email_worker(shop.sqs_event("emails", messages), lambda_context("emails_worker"))
        key = json.loads(messages[0]["Body"])["key"]
        assert EmailLedger().state(key) is None  # the claim is given back: the next delivery may send at once

        poller = shop.poller("emails", app_module.email_worker)
        dlq = shop.sqs.get_queue_url(QueueName=tables.EMAILS_QUEUE.dlq_name(shop.container.settings.queue_prefix))
        deadline = time.monotonic() + 60
        dead: list[dict] = []
        while not dead:
            assert time.monotonic() < deadline, "the job never reached the dead-letter queue"
            poller.poll_once()
            dead = shop.sqs.receive_message(QueueUrl=dlq["QueueUrl"], AttributeNames=["All"]).get("Messages", [])
    finally:
        wiring._container = previous

    assert json.loads(dead[0]["Body"])["key"] == key
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= tables.EMAILS_QUEUE.max_receive_count
    assert mail_to(lab, address) == []


def test_an_email_queue_that_refuses_never_undoes_a_purchase_and_the_purchase_message_is_redelivered(app_module, lab):
    # A queue nobody answers at: SQS is down for the email jobs.
    shop = lab.shop(EMAILS_QUEUE_URL="http://127.0.0.1:9/000000000000/nowhere")
    user_id, _ = _buyer(shop)
    created = shop.captured(user_id, shop.seats[:1])
    previous = wiring._container
    wiring._container = shop.container
    try:
        messages = shop.receive_for("purchases", created["order_id"])
        with pytest.raises(BatchProcessingError):  # the message comes back and queues the receipt again
            app_module.purchase_worker(shop.sqs_event("purchases", messages), lambda_context("purchases_worker"))
    finally:
        wiring._container = previous

    assert shop.order(created["order_id"]).status == "paid"
    assert shop.ticket(shop.seats[0]).status == holds.SOLD


def test_a_completed_refund_sends_its_confirmation(app_module, lab, shop):
    user_id, address = _buyer(shop)
    order_id = paid(app_module, shop, user_id, shop.seats[:2])
    shop.take("emails", order_id)  # the receipt is not what this test is about
    refund = shop.refunds.request(user_id, order_id, [shop.seats[1]])

    answer, _ = work(app_module, shop, "refunds", app_module.refund_worker, order_id)
    assert answer == {"batchItemFailures": []}
    work(app_module, shop, "emails", app_module.email_worker, order_id)

    [notice] = mail_to(lab, address)
    assert notice["subject"] == "Your refund for Pay"
    assert f"We refunded {refund['amount']} USD" in notice["body"]
    assert "Row A, seat 2" in notice["body"] and "Row A, seat 1" not in notice["body"]


def test_an_order_whose_seats_were_lost_sends_a_failure_notice(app_module, lab, shop):
    user_id, address = _buyer(shop)
    created = shop.captured(user_id, shop.seats[:2])
    Ticket(shop.showtime_id, shop.seats[0]).update(
        actions=[Ticket.status.set(holds.SOLD), Ticket.holder.set("someone"), Ticket.order_id.set("another-order")]
    )
    work(app_module, shop, "purchases", app_module.purchase_worker, created["order_id"])
    assert shop.order(created["order_id"]).status == "failed"

    answer, messages = work(app_module, shop, "emails", app_module.email_worker, created["order_id"])

    assert answer == {"batchItemFailures": []}
    assert [json.loads(m["Body"])["kind"] for m in messages] == ["failed"]
    [notice] = mail_to(lab, address)
    assert notice["subject"] == "Your order for Pay could not be completed"
    assert "refunded in full" in notice["body"]


def test_a_capture_denied_later_sends_a_failure_notice_saying_no_money_was_taken(app_module, lab, shop):
    user_id, address = _buyer(shop)
    created = shop.checkout(user_id, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "pending")
    shop.payments.execute(user_id, created["paypal_order_id"])
    capture_id = shop.capture_id(created["paypal_order_id"])
    shop.emulator.deny_capture(capture_id)

    event = webhook_event("PAYMENT.CAPTURE.DENIED", {"id": capture_id})
    shop.refunds.webhook({}, json.dumps(event).encode())  # fails the order, queues the notice (best effort)
    work(app_module, shop, "emails", app_module.email_worker, created["order_id"])

    [notice] = mail_to(lab, address)
    assert notice["subject"] == "Your order for Pay could not be completed"
    assert "The payment was declined by PayPal." in notice["body"]
    assert "No money was taken for this order." in notice["body"]


# --- resend (app.py's route through chalice.test.Client) ----------------------------------------------


@pytest.fixture
def api(app_module):
    with Client(app_module.app) as client:
        yield client


def resend(api, order_id: str, token: str):
    response = api.http.post(f"/api/orders/{order_id}/resend", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, json.loads(response.body)


def test_the_owner_gets_a_new_receipt_on_request(app_module, api, lab, shop):
    user_id, address = _buyer(shop)
    order_id = paid(app_module, shop, user_id, shop.seats[:1])
    work(app_module, shop, "emails", app_module.email_worker, order_id)

    assert resend(api, order_id, _token(shop, address)) == (202, {"order_id": order_id, "status": "queued"})
    work(app_module, shop, "emails", app_module.email_worker, order_id)

    receipts = mail_to(lab, address)
    assert len(receipts) == 2
    assert receipts[0]["body"] == receipts[1]["body"]


def test_someone_elses_order_cannot_be_resent(app_module, api, lab, shop):
    owner_id, owner_address = _buyer(shop)
    _, other_address = _buyer(shop)
    order_id = paid(app_module, shop, owner_id, shop.seats[:1])
    shop.take("emails", order_id)

    status, body = resend(api, order_id, _token(shop, other_address))

    assert (status, body["code"]) == (404, "not_found")
    assert shop.take("emails", order_id) == []
    assert resend(api, "no-such-order", _token(shop, other_address))[0] == 404


def test_an_unpaid_order_has_nothing_to_resend(app_module, api, shop):
    user_id, address = _buyer(shop)
    created = shop.checkout(user_id, shop.seats[:1])

    status, body = resend(api, created["order_id"], _token(shop, address))

    assert (status, body["code"]) == (409, "not_resendable")


def test_resends_are_rate_limited_per_buyer(app_module, api, shop):
    user_id, address = _buyer(shop)
    order_id = paid(app_module, shop, user_id, shop.seats[:1])
    token = _token(shop, address)

    answers = [resend(api, order_id, token) for _ in range(4)]

    assert [status for status, _ in answers] == [202, 202, 202, 429]
    assert answers[-1][1]["code"] == "rate_limited"


# --- the ledger's claim ------------------------------------------------------------------------------


def test_a_live_claim_keeps_others_off_and_a_lapsed_one_is_taken_over(shop):
    ledger, key = EmailLedger(), f"{uuid.uuid4().hex}#receipt"
    keep = {"lease_seconds": 30, "keep_seconds": 3600}

    assert ledger.claim(key, "first", now=1000, **keep) == Claim.TAKEN
    assert ledger.claim(key, "second", now=1029, **keep) == Claim.HELD
    assert ledger.claim(key, "second", now=1031, **keep) == Claim.TAKEN  # the first attempt died mid-send
    ledger.mark_sent(key, "first", message_id="late", now=1032)  # the first attempt's mark changes nothing
    assert ledger.state(key) == "sending"
    ledger.mark_sent(key, "second", message_id="m2", now=1033)

    assert ledger.state(key) == "sent"
    assert ledger.claim(key, "third", now=9999, **keep) == Claim.SENT
