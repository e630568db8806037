"""The local stack answers only itself: no DNS rebinding, no cross-site writes to its emulators, and the web
app's pages carry the deployed site's strict Content-Security-Policy."""

from __future__ import annotations

import requests

TIMEOUT = 10.0


def test_a_request_naming_another_host_is_refused(stack):
    answer = requests.get(stack.api("health/"), headers={"Host": "attacker.example:80"}, timeout=TIMEOUT)
    assert answer.status_code == 421
    assert answer.json()["code"] == "misdirected_request"
    assert requests.get(stack.api("health/"), timeout=TIMEOUT).status_code == 200


def test_a_cross_site_write_to_the_paypal_emulator_is_refused(stack):
    faults = f"{stack.base_url}/paypal/_control/faults"
    spec = {"op": "capture", "kind": "declined"}
    forged = requests.post(faults, json=spec, headers={"Origin": "http://attacker.example"}, timeout=TIMEOUT)
    assert forged.status_code == 403
    rebound = requests.post(
        f"{stack.base_url}/paypal/_control/webhook_url",
        data="url=http://attacker.example/",
        headers={"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert rebound.status_code == 403
    state = requests.get(f"{stack.base_url}/paypal/_control/state", timeout=TIMEOUT).json()
    assert state["faults"] == {}
    opaque = requests.post(faults, json=spec, headers={"Origin": "null"}, timeout=TIMEOUT)  # a sandboxed frame
    assert opaque.status_code == 403
    # The page's own origin (and tools that send none) may, and so may the emulator's own approval form, which
    # a browser sends with Origin "null" (the pages' no-referrer policy) but Sec-Fetch-Site same-origin.
    same = requests.delete(faults, headers={"Origin": stack.base_url}, timeout=TIMEOUT)
    assert same.status_code == 200
    own_form = requests.delete(faults, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"}, timeout=TIMEOUT)
    assert own_form.status_code == 200


def test_pages_carry_a_strict_content_security_policy(stack):
    page = requests.get(f"{stack.base_url}/", timeout=TIMEOUT)
    policy = page.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in page.text  # nothing inline for the policy to refuse
    api = requests.get(stack.api("health/"), timeout=TIMEOUT)
    assert "Content-Security-Policy" not in api.headers
