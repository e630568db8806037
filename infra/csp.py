"""The web app's Content-Security-Policy, in one place for the CloudFront distribution (infra/web.py) and the
local gateway (local/gateway.py), so `make run` breaks exactly where the deployed site would. No CDK imports.
"""

from __future__ import annotations

from collections.abc import Sequence


def content_security_policy(connect_sources: Sequence[str], script_hashes: Sequence[str] = ()) -> str:
    """The site's policy: only its own files, plus `connect_sources` for fetch / WebSocket and the hashed scripts.

    base-uri is 'self', not 'none': index.html sets a <base> (to the site's root) on the PayPal return paths.
    form-action stays 'self': the app reaches PayPal by navigating (a link, location.assign), never by a form.
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", *connect_sources],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())
