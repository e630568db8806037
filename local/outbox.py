"""The outbox of `make run`: every email the email worker sent through moto's SES, as a buyer would get it.

`GET /local/outbox` is a page (newest first: to, subject, body); `GET /local/outbox.json` the same as JSON, for
tests and scripts. Both read moto's own record of sent mail (`/moto-api/data.json`, its SES `Message` models): what
SES was asked to send, not a copy the app kept. moto keeps the HTML part of an email sent with both parts, so the
page shows that one (what mail clients display). moto's SES is in the state snapshot (local/moto/snapshot.py), so
the outbox survives a restart.
"""

from __future__ import annotations

import asyncio
import html
import json
import urllib.request
from collections.abc import Callable

from aiohttp import web

TIMEOUT = 10.0


def sent_mail(endpoint: str) -> list[dict]:
    """Every message moto's SES sent, newest first: {"id","from","to","subject","body"}. Raises OSError."""
    with urllib.request.urlopen(f"{endpoint.rstrip('/')}/moto-api/data.json", timeout=TIMEOUT) as answer:  # noqa: S310 - our moto
        models = json.load(answer)
    messages = models.get("ses", {}).get("Message", [])
    return [
        {
            "id": message.get("id"),
            "from": message.get("source"),
            "to": [a for addresses in (message.get("destinations") or {}).values() for a in addresses],
            "subject": message.get("subject"),
            "body": message.get("body") or "",
        }
        for message in reversed(messages)
    ]


def _body_of(document: str) -> str:
    """What is inside <body> (the email's own markup; the page's CSP runs no script of it)."""
    lower = document.lower()
    start, end = lower.find("<body>"), lower.rfind("</body>")
    return document[start + len("<body>") : end] if start >= 0 and end > start else html.escape(document)


def render(messages: list[dict]) -> str:
    items = "".join(
        '<article class="email">'
        f"<h2>{html.escape(m['subject'] or '(no subject)')}</h2>"
        f"<p>To: {html.escape(', '.join(m['to']))} &middot; From: {html.escape(m['from'] or '')}</p>"
        f"<div>{_body_of(m['body'])}</div></article><hr>"
        for m in messages
    )
    empty = "<p>No email sent yet. Buy a ticket and the receipt shows up here.</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Outbox (local)</title>'
        '<link rel="stylesheet" href="/style.css"></head><body><main>'
        f"<h1>Outbox</h1><p>{len(messages)} email(s) sent through moto's SES, newest first "
        '(<a href="/local/outbox.json">JSON</a>).</p>'
        f"{items or empty}</main></body></html>"
    )


def create_outbox_app(endpoint: Callable[[], str]) -> web.Application:
    """Mount under /local. `endpoint`: moto's URL (read when asked: the environment is prepared after the build)."""

    async def read() -> list[dict]:
        return await asyncio.get_running_loop().run_in_executor(None, sent_mail, endpoint())

    async def page(request: web.Request) -> web.Response:
        try:
            messages = await read()
        except OSError as exc:
            return web.Response(status=503, text=f"moto's SES cannot be read: {exc}", content_type="text/plain")
        return web.Response(text=render(messages), content_type="text/html")

    async def as_json(request: web.Request) -> web.Response:
        try:
            messages = await read()
        except OSError:
            return web.json_response({"code": "service_unavailable", "message": "moto cannot be read"}, status=503)
        return web.json_response({"results": messages})

    application = web.Application()
    application.router.add_get("/outbox", page)
    application.router.add_get("/outbox.json", as_json)
    return application
