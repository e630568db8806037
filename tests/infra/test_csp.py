"""The web app is served with a strict Content-Security-Policy and the other security headers."""

from __future__ import annotations

import re

import pytest

from infra.web import WEB_DIR, content_security_policy, inline_script_hashes
from tests.infra.cfn import Template, references

pytestmark = pytest.mark.slow

POLICY = "AWS::CloudFront::ResponseHeadersPolicy"
DISTRIBUTION = "AWS::CloudFront::Distribution"
INDEX_HTML = (WEB_DIR / "index.html").read_text(encoding="utf-8")


def _policy(template: Template) -> tuple[str, dict]:
    (found,) = template.of_type(POLICY).items()
    return found[0], found[1]["Properties"]["ResponseHeadersPolicyConfig"]


def _text(value: object) -> str:
    """A CloudFormation string as text, each reference shown as <Name>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_text(part) for part in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    raise AssertionError(f"unexpected value {value!r}")


def _directives(csp: str) -> dict[str, list[str]]:
    directives = {}
    for directive in filter(None, (part.strip() for part in csp.split(";"))):
        name, *sources = directive.split()
        assert name not in directives, f"{name} appears twice"
        directives[name] = sources
    return directives


def _csp(template: Template) -> dict[str, list[str]]:
    _, config = _policy(template)
    return _directives(_text(config["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"]))


# --- the synthesized policy ------------------------------------------------------------------------------


def test_every_response_of_the_distribution_carries_the_sites_headers_policy(template):
    policy_id, _ = _policy(template)
    (distribution,) = template.of_type(DISTRIBUTION).values()
    behavior = distribution["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["ResponseHeadersPolicyId"] == {"Ref": policy_id}


def test_the_csp_allows_only_the_site_itself_and_nothing_inline_or_evaluated(template):
    csp = _csp(template)

    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'", *inline_script_hashes(INDEX_HTML)]
    assert csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"]  # the favicon is a data: URL
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["base-uri"] == ["'self'"]  # index.html's <base> on the PayPal return paths
    forbidden = {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "https:", "http:", "wss:"}
    assert not [(name, sources) for name, sources in csp.items() if forbidden & set(sources)]
    assert [name for name, sources in csp.items() if "data:" in sources] == ["img-src"]


def test_the_page_may_connect_to_the_site_its_stages_rest_region_and_its_websocket_api(template):
    connect = _csp(template)["connect-src"]

    assert connect == [
        "'self'",
        "https://*.execute-api.<AWS::Region>.<AWS::URLSuffix>",
        "wss://<WebsocketAPI>.execute-api.<AWS::Region>.<AWS::URLSuffix>",
    ]
    _, config = _policy(template)
    # The REST API stays a wildcard: naming it would make the distribution depend on the functions (a cycle).
    assert references(config) == {"WebsocketAPI"}


def test_the_other_security_headers_are_set_and_override_the_origins(template):
    _, config = _policy(template)
    headers = config["SecurityHeadersConfig"]

    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 365 * 24 * 3600
    assert headers["StrictTransportSecurity"]["IncludeSubdomains"] is True
    assert headers["ContentTypeOptions"] == {"Override": True}  # X-Content-Type-Options: nosniff
    assert headers["FrameOptions"] == {"FrameOption": "DENY", "Override": True}
    assert headers["ReferrerPolicy"] == {"ReferrerPolicy": "no-referrer", "Override": True}
    assert headers["XSSProtection"] == {"Protection": False, "Override": True}
    assert all(header["Override"] is True for header in headers.values())


def test_each_stage_has_its_own_headers_policy_name(synthesis):
    # Response headers policy names are unique per account.
    names = [_policy(template)[1]["Name"] for template in synthesis.templates.values()]
    assert len(set(names)) == len(names), names


# --- the policy builder ----------------------------------------------------------------------------------


def test_inline_script_hashes_match_the_csp_specifications_example():
    html = "<p>x</p><script>alert('Hello, world.');</script><script src=app.js></script>"
    assert inline_script_hashes(html) == ["'sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng='"]


def test_inline_script_hashes_see_line_breaks_as_browsers_do():
    assert inline_script_hashes("<script>a();\r\nb();</script>") == inline_script_hashes("<script>a();\nb();</script>")
    assert inline_script_hashes('<script type="module" src="app.js"></script>') == []


def test_the_policy_lists_connect_sources_and_hashes_where_they_belong():
    csp = _directives(content_security_policy(["https://api.example.org"], ["'sha256-x'"]))
    assert csp["connect-src"] == ["'self'", "https://api.example.org"]
    assert csp["script-src"] == ["'self'", "'sha256-x'"]


# --- the web app against the policy ----------------------------------------------------------------------


def test_the_web_app_uses_nothing_the_policy_blocks():
    # Hashed inline scripts are allowed; inline styles, inline handlers, javascript: URLs, string code and
    # style attributes are not (scripts set styles through the CSSOM, which the policy allows).
    html_blocked = {
        "<style> element": r"<style\b",
        "style attribute": r"\sstyle\s*=",
        "inline event handler": r"\son[a-z]+\s*=",
        "javascript: URL": r"javascript:",
    }
    for name, pattern in html_blocked.items():
        assert not re.search(pattern, INDEX_HTML, re.IGNORECASE), f"index.html: {name}"
    js_blocked = {
        "eval": r"\beval\s*\(",
        "new Function": r"\bnew\s+Function\s*\(",
        "string timer": r"\bset(?:Timeout|Interval)\s*\(\s*['\"`]",
        "style attribute": r"setAttribute\(\s*['\"]style['\"]",
        "style string": r"\bstyle\s*:\s*['\"`]",
        "HTML insertion": r"\b(?:innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b",
    }
    for path in sorted(WEB_DIR.rglob("*.js")):
        text = re.sub(r"(^|\s)//.*$", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE)  # comments
        for name, pattern in js_blocked.items():
            assert not re.search(pattern, text), f"{path.relative_to(WEB_DIR)}: {name}"
