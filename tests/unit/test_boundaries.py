"""The layers keep to their places: storage models never leave `chalicelib/storage/`, and the order statuses and
their moves are the contract's."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from chalicelib import order_status
from chalicelib.order_status import OrderStatus, can_move

ROOT = Path(__file__).resolve().parents[2]
S = OrderStatus


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def outside_storage() -> list[Path]:
    return [ROOT / "app.py", *(p for p in (ROOT / "chalicelib").rglob("*.py") if "storage" not in p.parts)]


def test_nothing_outside_storage_imports_the_models_or_pynamodb():
    leaks = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.startswith(("pynamodb",)) or m == "chalicelib.storage.models"
        )
        for path in outside_storage()
    }
    assert {path: modules for path, modules in leaks.items() if modules} == {}


def test_repositories_neither_take_nor_return_a_model():
    from chalicelib.storage import accounts, catalog, connections, models, orders, seats

    model_names = {
        name for name, value in vars(models).items() if inspect.isclass(value) and issubclass(value, models.Model)
    }
    offending = []
    for module in (accounts, catalog, connections, orders, seats):
        for cls_name, cls in vars(module).items():
            if not (inspect.isclass(cls) and cls_name.endswith("Repository")):
                continue
            for name, method in vars(cls).items():
                if name.startswith("_") or not callable(method):
                    continue
                annotations = " ".join(str(a) for a in inspect.get_annotations(method).values())
                offending += [f"{cls_name}.{name}: {m}" for m in model_names if re.search(rf"\\b{m}\\b", annotations)]
    assert offending == []


# --- order statuses --------------------------------------------------------------------------------------

# The contract (docs/API.md, "Order status"), move by move.
CONTRACT = {
    (S.CREATED, S.PROCESSING),
    (S.PROCESSING, S.PAID),
    (S.PAID, S.REFUND_PENDING),
    (S.PARTIALLY_REFUNDED, S.REFUND_PENDING),
    (S.REFUND_PENDING, S.PARTIALLY_REFUNDED),
    (S.REFUND_PENDING, S.REFUNDED),
    (S.REFUND_PENDING, S.PAID),  # a failed refund goes back to where it came from
    (S.REFUND_PENDING, S.PARTIALLY_REFUNDED),
    (S.CREATED, S.CANCELLED),
    (S.CREATED, S.EXPIRED),
    (S.PROCESSING, S.CREATED),  # the capture is declined
    (S.PROCESSING, S.FAILED),
    # the payment was taken back (chargeback, a dispute the buyer won)
    (S.PAID, S.REVERSED),
    (S.PARTIALLY_REFUNDED, S.REVERSED),
    (S.REFUND_PENDING, S.REVERSED),
}
# Beyond the contract's list, each with its reason in the code.
EXTRA = {
    (S.PROCESSING, S.PROCESSING),  # the capture id recorded (execute, or a webhook first)
    (S.PAID, S.PARTIALLY_REFUNDED),  # a refund made in PayPal's dashboard
    (S.PAID, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),
    (S.PARTIALLY_REFUNDED, S.REFUNDED),
}


def test_the_moves_are_the_contracts_and_nothing_else():
    allowed = {(a, b) for a in OrderStatus for b in OrderStatus if can_move(a, b)}
    assert allowed == CONTRACT | EXTRA


@pytest.mark.parametrize("status", [S.CANCELLED, S.EXPIRED, S.FAILED, S.REFUNDED, S.REVERSED])
def test_ended_orders_never_move(status):
    assert status in order_status.FINAL
    assert not any(can_move(status, target) for target in OrderStatus)


def test_statuses_are_the_strings_stored_and_sent():
    assert [str(s) for s in OrderStatus] == [
        "created",
        "processing",
        "paid",
        "refund_pending",
        "partially_refunded",
        "refunded",
        "cancelled",
        "expired",
        "failed",
        "reversed",
    ]
    assert can_move("created", "processing") and not can_move("created", "paid")
    assert not can_move("nonsense", "paid")


def test_refunding_every_ticket_refunds_the_order():
    assert order_status.refunded_status({"a", "b"}, {"a", "b"}) == S.REFUNDED
    assert order_status.refunded_status({"a"}, {"a", "b"}) == S.PARTIALLY_REFUNDED


def test_one_rule_for_our_ids():
    from chalicelib.domain import ID_PATTERN, plausible_id
    from chalicelib.openapi import document

    assert plausible_id("a" * 64) and not plausible_id("a" * 65)
    assert not plausible_id("") and not plausible_id("a/b") and not plausible_id("é") and not plausible_id(None)
    patterns = {
        p["schema"]["pattern"]
        for op in document()["paths"].values()
        for m in op.values()
        for p in m.get("parameters", [])
        if p["in"] == "path"
    }
    assert patterns == {ID_PATTERN}
