"""PayPal's JSON for orders, captures and refunds, links built from the current request's base."""

from __future__ import annotations

import copy
import logging
from decimal import Decimal
from typing import Any

from local.paypal.model import (
    BUYER_EMAIL,
    BUYER_NAME,
    MERCHANT,
    Capture,
    Order,
    Refund,
    hateoas_link,
    money_of,
    paypal_fee,
)

log = logging.getLogger(__name__)


class Views:
    """Mixed into PayPalEmulator: reads its orders, captures and refunds."""

    captures: dict[str, Capture]
    refunds: dict[str, Refund]

    # -- views: PayPal's JSON, links built from the current request's base --------------------------------

    def approval_link(self, order: Order, base: str) -> str:
        return f"{base}/checkoutnow?token={order.id}"

    def order_view(self, order: Order, base: str) -> dict[str, Any]:
        unit = {**copy.deepcopy(order.unit), "payee": dict(MERCHANT)}
        if order.capture_ids:
            captures = [self.capture_view(self.captures[cid], base) for cid in order.capture_ids]
            unit["payments"] = {"captures": captures}
            refunds = [self.refund_view(self.refunds[rid], base) for c in captures for rid in self._refund_ids(c)]
            if refunds:
                unit["payments"]["refunds"] = refunds
        view: dict[str, Any] = {
            "id": order.id,
            "intent": "CAPTURE",
            "status": order.status,
            "purchase_units": [unit],
            "create_time": order.create_time,
            "update_time": order.update_time,
            "links": self._order_links(order, base),
        }
        if order.awaiting_status == "PAYER_ACTION_REQUIRED" or order.payer_id:
            view["payment_source"] = {"paypal": self._wallet(order)}
        if order.payer_id:
            view["payer"] = {
                "name": dict(BUYER_NAME),
                "email_address": BUYER_EMAIL,
                "payer_id": order.payer_id,
                "address": {"country_code": "US"},
            }
        return view

    def _refund_ids(self, capture_view: dict[str, Any]) -> list[str]:
        return self.captures[capture_view["id"]].refund_ids

    @staticmethod
    def _wallet(order: Order) -> dict[str, Any]:
        if not order.payer_id:
            return {}
        return {
            "email_address": BUYER_EMAIL,
            "account_id": order.payer_id,
            "account_status": "VERIFIED",
            "name": dict(BUYER_NAME),
            "address": {"country_code": "US"},
        }

    def _order_links(self, order: Order, base: str) -> list[dict[str, str]]:
        self_href = f"{base}/v2/checkout/orders/{order.id}"
        links = [hateoas_link(self_href, "self")]
        if order.status == "PAYER_ACTION_REQUIRED":
            links.append(hateoas_link(self.approval_link(order, base), "payer-action"))
        elif order.status == "CREATED":
            links.append(hateoas_link(self.approval_link(order, base), "approve"))
        if order.status in ("CREATED", "APPROVED"):
            links += [
                hateoas_link(self_href, "update", "PATCH"),
                hateoas_link(f"{self_href}/capture", "capture", "POST"),
            ]
        return links

    def capture_view(self, capture: Capture, base: str) -> dict[str, Any]:
        href = f"{base}/v2/payments/captures/{capture.id}"
        view: dict[str, Any] = {
            "id": capture.id,
            "status": capture.status,
            "amount": money_of(capture.amount, capture.currency),
            "final_capture": True,
            "disbursement_mode": "INSTANT",
            "seller_protection": {
                "status": "ELIGIBLE",
                "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
            },
            "supplementary_data": {"related_ids": {"order_id": capture.order_id}},
            "payee": dict(MERCHANT),
            "links": [
                hateoas_link(href, "self"),
                hateoas_link(f"{href}/refund", "refund", "POST"),
                hateoas_link(f"{base}/v2/checkout/orders/{capture.order_id}", "up"),
            ],
            "create_time": capture.create_time,
            "update_time": capture.update_time,
        }
        if capture.status_reason:
            view["status_details"] = {"reason": capture.status_reason}
        # PayPal leaves the breakdown out while money is still pending.
        if capture.status not in ("PENDING", "DECLINED"):
            fee = paypal_fee(capture.amount)
            view["seller_receivable_breakdown"] = {
                "gross_amount": money_of(capture.amount, capture.currency),
                "paypal_fee": money_of(fee, capture.currency),
                "net_amount": money_of(capture.amount - fee, capture.currency),
            }
        for key in ("custom_id", "invoice_id"):
            if getattr(capture, key):
                view[key] = getattr(capture, key)
        return view

    def refund_view(self, refund: Refund, base: str) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": refund.id,
            "status": refund.status,
            "amount": money_of(refund.amount, refund.currency),
            "seller_payable_breakdown": {
                "gross_amount": money_of(refund.amount, refund.currency),
                "paypal_fee": money_of(Decimal(0), refund.currency),
                "net_amount": money_of(refund.amount, refund.currency),
                "total_refunded_amount": money_of(refund.total_refunded, refund.currency),
            },
            "links": [
                hateoas_link(f"{base}/v2/payments/refunds/{refund.id}", "self"),
                hateoas_link(f"{base}/v2/payments/captures/{refund.capture_id}", "up"),
            ],
            "create_time": refund.create_time,
            "update_time": refund.create_time,
        }
        for key in ("invoice_id", "custom_id", "note_to_payer"):
            if getattr(refund, key):
                view[key] = getattr(refund, key)
        return view
