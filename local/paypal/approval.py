"""The buyer's approval page: an Approve and a Cancel form, each answered by a redirect to the order's return or
cancel URL with PayPal's query parameters."""

from __future__ import annotations

import html
import logging

from aiohttp import web

from local.paypal.model import ControlError, Order, format_amount, with_query
from local.paypal.routing import base_of, emulator_of_request

log = logging.getLogger(__name__)


# ---- approval page ---------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body>
<main>
<h1>{title}</h1>
{content}
<p><small>Local PayPal emulator: no real money moves.</small></p>
</main>
</body>
</html>
"""


def _page(title: str, content: str, status: int = 200) -> web.Response:
    text = _PAGE.format(title=html.escape(title), content=content)
    return web.Response(text=text, content_type="text/html", status=status)


def _approval_content(order: Order, action_url: str) -> str:
    unit = order.unit
    description = f"<p>{html.escape(str(unit['description']))}</p>" if unit.get("description") else ""
    amount = f"{format_amount(order.total)} {order.currency}"
    url = html.escape(action_url, quote=True)
    return (
        f"{description}{_items_list(unit.get('items') or [], order.currency)}"
        f"<p>Total: <strong>{html.escape(amount)}</strong></p>\n"
        f'<form method="post" action="{url}"><button type="submit" name="action" value="approve">Approve</button></form>\n'
        f'<form method="post" action="{url}"><button type="submit" name="action" value="cancel">Cancel</button></form>'
    )


def _items_list(items: list, currency: str) -> str:
    """The order's items as PayPal lists them to the buyer: name, details, quantity and price."""
    if not items:
        return ""
    rows = []
    for item in items:
        details = f"<br><small>{html.escape(str(item['description']))}</small>" if item.get("description") else ""
        price = f"{item['unit_amount']['value']} {currency}"
        quantity = f" &times; {html.escape(str(item['quantity']))}" if str(item.get("quantity")) != "1" else ""
        rows.append(f"<li>{html.escape(str(item['name']))}{quantity}: {html.escape(price)}{details}</li>")
    return f'<ul class="items">{"".join(rows)}</ul>\n'


async def handle_approval_page(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    order = emulator.orders.get(request.query.get("token", ""))
    if order is None:
        return _page("Unknown order", "<p>This payment link is not valid.</p>", status=404)
    if order.status not in (order.awaiting_status, "APPROVED"):
        return _page("Order closed", f"<p>This order is {html.escape(order.status)}.</p>", status=409)
    content = _approval_content(order, emulator.approval_link(order, base_of(request)))
    return _page(f"Pay {order.brand_name} with PayPal", content)


async def handle_approval_action(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    form = await request.post()
    order_id = request.query.get("token") or str(form.get("token", ""))
    action = form.get("action")
    order = emulator.orders.get(order_id)
    if order is None:
        return _page("Unknown order", "<p>This payment link is not valid.</p>", status=404)
    if action == "cancel":
        if not order.cancel_url:
            return _page("Payment cancelled", "<p>You can close this window.</p>")
        raise web.HTTPFound(with_query(order.cancel_url, {"token": order.id}))
    if action != "approve":
        return _page("Bad request", "<p>Choose Approve or Cancel.</p>", status=400)
    try:
        emulator.approve(order.id, base_of(request))
    except ControlError as exc:
        return _page("Order closed", f"<p>{html.escape(str(exc))}</p>", status=exc.status)
    if not order.return_url:
        return _page("Payment approved", "<p>You can close this window.</p>")
    raise web.HTTPFound(with_query(order.return_url, {"token": order.id, "PayerID": order.payer_id or ""}))
