"""What a buyer's emails say, and when an order no longer warrants one (chalicelib/emails.py, pure)."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, load_settings
from chalicelib.domain import OrderRecord, OrderTicket, RefundEntry
from chalicelib.emails import Kind, compose
from chalicelib.mailer import EmailNotSent, Mailer

URL = "https://tickets.example/#/orders/o1"


def order(*, status="paid", refunded=(), refunds=(), title="Dune <Part Two>", **extra) -> OrderRecord:
    tickets = tuple(OrderTicket(ticket_id=f"S-D{n}", seat=f"D{n}", price="12.00", row="D", number=n) for n in (5, 6, 7))
    return OrderRecord(
        order_id="o1",
        user_id="u1",
        showtime_id="S",
        event_id="e1",
        status=status,
        amount="36.00",
        currency="USD",
        tickets=tickets,
        created_at="2030-01-01T00:00:00.000000Z",
        expires_at=1_900_000_900,
        refunded_ticket_ids=tuple(refunded),
        refunds=tuple(refunds),
        event_title=title,
        starts_at="2026-12-05T19:30:00Z",
        theater="Hall 1",
        **extra,
    )


def refund(status: str, ticket_ids=("S-D6",), **extra) -> RefundEntry:
    return RefundEntry(
        refund_id="r1", status=status, amount="12.00", ticket_ids=ticket_ids, previous_status="paid", **extra
    )


def test_a_receipt_names_the_showing_every_seat_the_total_and_links_to_the_order():
    email = compose(Kind.RECEIPT, order(), order_url=URL)

    assert email is not None
    assert email.subject == "Your tickets for Dune <Part Two>"
    for line in ("Sat 5 Dec 2026, 19:30 UTC", "Hall 1", "Row D, seat 5: 12.00 USD", "Row D, seat 7", "36.00 USD", URL):
        assert line in email.text
    assert "Seats (3 seats):" in email.text


def test_the_html_body_escapes_what_the_event_title_holds():
    email = compose(Kind.RECEIPT, order(), order_url=URL)

    assert email is not None
    assert "Dune &lt;Part Two&gt;" in email.html and "<Part Two>" not in email.html
    assert f'<a href="{URL}">' in email.html


def test_a_receipt_carries_the_codes_of_the_seats_still_valid():
    codes = {"S-D5": "T1.k.five.sig", "S-D6": "T1.k.six.sig", "S-D7": "T1.k.seven.sig"}
    email = compose(Kind.RECEIPT, order(status="partially_refunded", refunded=("S-D6",)), order_url=URL, codes=codes)

    assert email is not None
    assert "Row D, seat 5: T1.k.five.sig" in email.text and "Row D, seat 7: T1.k.seven.sig" in email.text
    assert "T1.k.six.sig" not in email.text and "T1.k.six.sig" not in email.html
    assert "Your e-ticket codes" not in compose(Kind.RECEIPT, order(), order_url=URL).text  # none given: none shown


def test_a_partly_refunded_orders_receipt_lists_only_the_seats_still_valid():
    email = compose(Kind.RECEIPT, order(status="partially_refunded", refunded=("S-D6",)), order_url=URL)

    assert email is not None
    assert "Row D, seat 6" not in email.text and "Seats (2 seats):" in email.text


@pytest.mark.parametrize("status", ["refunded", "failed", "reversed", "created", "processing"])
def test_no_receipt_for_an_order_without_valid_tickets(status):
    assert compose(Kind.RECEIPT, order(status=status), order_url=URL) is None


def test_a_completed_refund_says_how_much_and_which_seats_are_no_longer_valid():
    email = compose(
        Kind.REFUND, order(status="partially_refunded", refunds=[refund("completed")]), order_url=URL, refund_id="r1"
    )

    assert email is not None
    assert email.subject == "Your refund for Dune <Part Two>"
    assert "We refunded 12.00 USD" in email.text
    assert "Row D, seat 6" in email.text and "Row D, seat 5" not in email.text


def test_a_failed_refund_gives_its_reason_and_says_the_tickets_still_hold():
    failed = refund("failed", reason="The refund window for this payment has passed.")
    email = compose(Kind.REFUND, order(refunds=[failed]), order_url=URL, refund_id="r1")

    assert email is not None
    assert "could not be made" in email.subject
    assert "The refund window for this payment has passed." in email.text
    assert "Your tickets are still valid." in email.text


@pytest.mark.parametrize("refunds, refund_id", [([], "r1"), ([refund("pending")], "r1"), ([refund("completed")], "r2")])
def test_no_refund_notice_for_a_refund_that_is_unknown_or_still_pending(refunds, refund_id):
    assert compose(Kind.REFUND, order(refunds=refunds), order_url=URL, refund_id=refund_id) is None


def test_a_failure_notice_says_whether_the_payment_came_back():
    auto = refund("completed", ticket_ids=("S-D5", "S-D6", "S-D7"), source="system")
    lost = order(status="failed", failure_reason="Your seats could not be secured.", refunds=[auto])
    declined = order(status="failed", failure_reason="The payment was declined by PayPal.")

    lost_email = compose(Kind.FAILED, lost, order_url=URL)
    declined_email = compose(Kind.FAILED, declined, order_url=URL)

    assert lost_email is not None and declined_email is not None
    assert "Your payment of 12.00 USD was refunded in full." in lost_email.text
    assert "No money was taken for this order." in declined_email.text
    assert compose(Kind.FAILED, order(status="paid"), order_url=URL) is None


def test_an_order_from_before_titles_were_kept_still_gets_a_readable_email():
    email = compose(Kind.RECEIPT, order(title=None), order_url=URL)

    assert email is not None
    assert email.subject == "Your tickets for your showing"


def test_the_order_page_url_must_have_a_place_for_the_order_id():
    with pytest.raises(ConfigError, match="ORDER_PAGE_URL"):
        load_settings({"ORDER_PAGE_URL": "https://tickets.example/orders"})
    settings = load_settings({"ORDER_PAGE_URL": "https://tickets.example/#/orders/{order_id}"})
    assert settings.order_page_url == "https://tickets.example/#/orders/{order_id}"
    assert load_settings({}).limits.resends_per_user == (3, 3600)


class FakeSes:
    """SES v1's send_email as botocore answers it: a message id, or a ClientError by code."""

    def __init__(self, error_code: str | None = None) -> None:
        self.error_code = error_code
        self.sent: list[dict] = []

    def send_email(self, **request):
        from botocore.exceptions import ClientError

        if self.error_code:
            message = "Email address is not verified: buyer@example.com"
            raise ClientError({"Error": {"Code": self.error_code, "Message": message}}, "SendEmail")
        self.sent.append(request)
        return {"MessageId": f"m{len(self.sent)}"}


def test_the_mailer_sends_both_bodies_from_the_configured_sender():
    ses = FakeSes()
    email = compose(Kind.RECEIPT, order(), order_url=URL)
    assert email is not None

    assert Mailer(lambda: ses, "tickets@example.com").send("buyer@example.com", email) == "m1"

    (request,) = ses.sent
    assert request["Source"] == "tickets@example.com"
    assert request["Destination"] == {"ToAddresses": ["buyer@example.com"]}
    assert request["Message"]["Subject"]["Data"] == email.subject
    assert request["Message"]["Body"]["Text"]["Data"] == email.text
    assert request["Message"]["Body"]["Html"]["Data"] == email.html


def test_an_ses_refusal_becomes_email_not_sent_by_code_without_the_address():
    email = compose(Kind.RECEIPT, order(), order_url=URL)
    assert email is not None

    with pytest.raises(EmailNotSent) as raised:
        Mailer(lambda: FakeSes("MessageRejected"), "tickets@example.com").send("buyer@example.com", email)

    assert raised.value.code == "MessageRejected"
    assert "buyer@example.com" not in str(raised.value) and raised.value.__cause__ is None
