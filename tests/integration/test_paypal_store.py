"""The PayPal emulator's state kept in a file: what a restart of `make run` must not forget."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.paypal import PayPalClient, PayPalError, first_capture
from tests.support.payflow import standalone_emulator

CLIENT = {"client_id": "store-client", "client_secret": "store-secret"}


def paypal(emulator) -> PayPalClient:
    return PayPalClient(emulator.base, CLIENT["client_id"], CLIENT["client_secret"])


def paid_order(client: PayPalClient, emulator) -> tuple[str, str]:
    key = uuid.uuid4().hex[:12]
    created = client.create_order(
        request_id=f"create-{key}",
        reference_id=key,
        custom_id=key,
        invoice_id=f"inv-{key}",
        description="2 seats",
        currency="USD",
        items=[("Seat A1", Decimal("12.00")), ("Seat A2", Decimal("12.00"))],
        return_url="https://tickets.example/return",
        cancel_url="https://tickets.example/cancel",
    )
    emulator.approve(created["id"])
    captured = client.capture_order(created["id"], request_id=f"capture-{key}")
    return created["id"], first_capture(captured)["id"]


def test_orders_captures_refunds_and_idempotent_replays_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "paypal.json"
    with standalone_emulator(state_path=state, **CLIENT) as emulator:
        client = paypal(emulator)
        order_id, capture_id = paid_order(client, emulator)
        first = client.refund_capture(capture_id, request_id="refund-1", amount=Decimal("12.00"), currency="USD")
        time.sleep(0.5)  # saves are debounced; a clean stop saves too

    with standalone_emulator(state_path=state, **CLIENT) as emulator:
        client = paypal(emulator)
        assert client.get_order(order_id)["status"] == "COMPLETED"
        assert client.get_capture(capture_id)["status"] == "PARTIALLY_REFUNDED"
        replay = client.refund_capture(capture_id, request_id="refund-1", amount=Decimal("12.00"), currency="USD")
        assert replay["id"] == first["id"]  # the first answer, not a second refund
        rest = client.refund_capture(capture_id, request_id="refund-2", amount=None, currency=None)
        assert rest["amount"]["value"] == "12.00"
        assert client.get_capture(capture_id)["status"] == "REFUNDED"
        with pytest.raises(PayPalError) as refused:
            client.refund_capture(capture_id, request_id="refund-3", amount=None, currency=None)
        assert refused.value.issue == "CAPTURE_FULLY_REFUNDED"


def test_a_clean_stop_saves_what_changed_just_before(tmp_path: Path) -> None:
    state = tmp_path / "paypal.json"
    with standalone_emulator(state_path=state, **CLIENT) as emulator:
        order_id, _ = paid_order(paypal(emulator), emulator)
    saved = json.loads(state.read_text())
    assert order_id in {order["id"] for order in saved["orders"]}


@pytest.mark.parametrize("content", ["{not json", '{"format": 99}', "[]"], ids=["garbage", "format", "shape"])
def test_a_state_file_that_cannot_be_read_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    from local.paypal import create_paypal_app
    from local.paypal.store import StateFileError

    state = tmp_path / "paypal.json"
    state.write_text(content)
    with pytest.raises(StateFileError) as raised:
        create_paypal_app(state_path=state)
    assert str(state) in str(raised.value) and "make reset" in str(raised.value)
