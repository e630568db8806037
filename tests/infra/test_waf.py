"""WAF: the REST API stage and the web app each sit behind a web ACL with managed rules and per-IP rate limits."""

from __future__ import annotations

import json
import posixpath
import re
from urllib.parse import unquote

import pytest

from infra import waf
from infra.settings import DEFAULTS, STAGES, stage_settings
from tests.infra.cfn import Template, literal_text

assertions = pytest.importorskip(
    "aws_cdk.assertions", reason="aws-cdk-lib is not installed: pip install -r requirements-infra.txt"
)
pytestmark = pytest.mark.slow

WEB_ACL = "AWS::WAFv2::WebACL"
ASSOCIATION = "AWS::WAFv2::WebACLAssociation"
DISTRIBUTION = "AWS::CloudFront::Distribution"
RATE_RULES = {  # rule name -> the setting that limits it
    "token-rate": "waf_token_limit",
    "register-rate": "waf_register_limit",
    "webhook-rate": "waf_webhook_limit",
    "ip-rate": "waf_ip_limit",
}


# --- a small evaluator of the statements these web ACLs use (URI path and labels only) ---------------------


def _transform(path: str, transformations: list[dict]) -> str:
    """WAF's URL_DECODE and NORMALIZE_PATH, closely enough for prefix matching."""
    for transformation in sorted(transformations, key=lambda t: t["Priority"]):
        if transformation["Type"] == "URL_DECODE":
            path = unquote(path)
        elif transformation["Type"] == "NORMALIZE_PATH":
            path = posixpath.normpath(re.sub(r"/{2,}", "/", path)) + ("/" if path.endswith("/") else "")
        else:
            raise AssertionError(f"unexpected transformation {transformation['Type']}")
    return path


def _matches(statement: dict, path: str, labels: frozenset[str] = frozenset()) -> bool:
    (kind, body), *rest = statement.items()
    assert not rest, statement
    if kind == "OrStatement":
        return any(_matches(inner, path, labels) for inner in body["Statements"])
    if kind == "AndStatement":
        return all(_matches(inner, path, labels) for inner in body["Statements"])
    if kind == "NotStatement":
        return not _matches(body["Statement"], path, labels)
    if kind == "LabelMatchStatement":
        assert body["Scope"] == "LABEL"
        return body["Key"] in labels
    assert kind == "ByteMatchStatement", kind
    assert body["FieldToMatch"] == {"UriPath": {}} and body["PositionalConstraint"] == "STARTS_WITH"
    return _transform(path, body["TextTransformations"]).startswith(body["SearchString"])


# --- helpers ---------------------------------------------------------------------------------------------


def _acl(template: Template, scope: str) -> tuple[str, dict]:
    found = [(n, r["Properties"]) for n, r in template.of_type(WEB_ACL).items() if r["Properties"]["Scope"] == scope]
    assert len(found) == 1, f"{template.stage}: expected one {scope} web ACL, found {len(found)}"
    return found[0]


def _rules(acl: dict) -> dict[str, dict]:
    return {rule["Name"]: rule for rule in acl["Rules"]}


def _rest_stage(template: Template) -> str:
    return template.props("RestAPI")["StageName"]


def _managed(rule: dict) -> dict:
    return rule["Statement"]["ManagedRuleGroupStatement"]


# --- the REST API's web ACL ------------------------------------------------------------------------------


def test_rest_api_stage_is_associated_with_this_stages_regional_web_acl(template):
    acl_id, acl = _acl(template, "REGIONAL")
    (association,) = template.of_type(ASSOCIATION).values()
    props = association["Properties"]

    assert acl["Name"] == f"{DEFAULTS[template.stage].resource_prefix}api"
    assert acl["DefaultAction"] == {"Allow": {}}
    assert props["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    parts = props["ResourceArn"]["Fn::Join"][1]
    # SAM's `Ref RestAPI.Stage`: the stage's name, and a dependency on the stage SAM generates.
    assert parts[-2:] == ["/stages/", {"Ref": "RestAPI.Stage"}]
    assert {"Ref": "RestAPI"} in parts and literal_text(props["ResourceArn"]).startswith("arn:")
    assert ":apigateway:" in literal_text(props["ResourceArn"])


def test_the_rest_api_has_no_second_stage_outside_the_web_acl(template):
    # Without OpenApiVersion, SAM also deploys the API to a stage named "Stage", unthrottled and unprotected.
    assert template.props("RestAPI")["OpenApiVersion"] == "2.0"
    assert template.props("RestAPI")["DefinitionBody"]["swagger"] == "2.0"


def test_rest_api_web_acl_runs_the_managed_rule_groups_in_order(template):
    _, acl = _acl(template, "REGIONAL")
    order = [rule["Name"] for rule in sorted(acl["Rules"], key=lambda r: r["Priority"])]

    assert order == [
        waf.IP_REPUTATION,
        "token-rate",
        "register-rate",
        "webhook-rate",
        "ip-rate",
        waf.COMMON_RULE_SET,
        "body-size",
        waf.KNOWN_BAD_INPUTS,
    ]
    for name in (waf.IP_REPUTATION, waf.COMMON_RULE_SET, waf.KNOWN_BAD_INPUTS):
        rule = _rules(acl)[name]
        assert _managed(rule)["VendorName"] == "AWS" and _managed(rule)["Name"] == name
        assert rule["OverrideAction"] == {"None": {}}  # the group's own Block actions apply


@pytest.mark.parametrize("rule_name", sorted(RATE_RULES))
def test_rate_rules_count_each_ip_over_five_minutes_with_the_stage_limit(template, rule_name):
    _, acl = _acl(template, "REGIONAL")
    rate = _rules(acl)[rule_name]["Statement"]["RateBasedStatement"]

    assert rate["AggregateKeyType"] == "IP"
    assert rate["EvaluationWindowSec"] == 300
    assert rate["Limit"] == getattr(DEFAULTS[template.stage], RATE_RULES[rule_name])


@pytest.mark.parametrize(
    "rule_name, counted, not_counted",
    [
        (
            "token-rate",
            ["/api/token", "/api/token/", "/api/token/refresh", "/{s}/api/token/", "/{s}/api/token/refresh/"],
            ["/{s}/api/events/", "/{s}/api/auth/me/", "/{s}/api/payment/webhook/"],
        ),
        ("register-rate", ["/api/auth/register", "/{s}/api/auth/register/"], ["/{s}/api/token/", "/{s}/api/auth/me"]),
        (
            "webhook-rate",
            ["/api/payment/webhook", "/{s}/api/payment/webhook", "/{s}/api/payment/webhook/"],
            ["/{s}/api/payment/create/", "/{s}/api/token/"],
        ),
        (
            "ip-rate",
            ["/{s}/api/events/", "/{s}/api/token/", "/api/cart/", "/{s}/api/payment/create/"],
            ["/{s}/api/payment/webhook/", "/api/payment/webhook"],
        ),
    ],
)
def test_rate_rules_count_their_paths_with_and_without_the_stage_prefix(template, rule_name, counted, not_counted):
    _, acl = _acl(template, "REGIONAL")
    scope = _rules(acl)[rule_name]["Statement"]["RateBasedStatement"]["ScopeDownStatement"]
    stage = _rest_stage(template)

    for path in counted:
        assert _matches(scope, path.format(s=stage)), (rule_name, path)
    for path in not_counted:
        assert not _matches(scope, path.format(s=stage)), (rule_name, path)


def test_encoded_or_doubled_slashes_do_not_escape_the_sign_in_limit(template):
    _, acl = _acl(template, "REGIONAL")
    scope = _rules(acl)["token-rate"]["Statement"]["RateBasedStatement"]["ScopeDownStatement"]
    stage = _rest_stage(template)

    for path in (f"/{stage}//api/token/", f"/{stage}/api/%74oken/", f"/{stage}/./api/token/refresh"):
        assert _matches(scope, path), path


def test_rate_limited_clients_get_429_in_the_apis_error_shape_readable_cross_origin(template):
    _, acl = _acl(template, "REGIONAL")
    bodies = acl["CustomResponseBodies"]

    for rule_name in RATE_RULES:
        response = _rules(acl)[rule_name]["Action"]["Block"]["CustomResponse"]
        assert response["ResponseCode"] == 429
        assert response["ResponseHeaders"] == [{"Name": "Access-Control-Allow-Origin", "Value": "*"}]
        body = bodies[response["CustomResponseBodyKey"]]
        assert body["ContentType"] == "APPLICATION_JSON"
        assert json.loads(body["Content"])["code"] == "rate_limited"


def test_core_rule_sets_body_size_rule_only_counts_and_our_rule_blocks_it_except_for_large_bodies(template):
    _, acl = _acl(template, "REGIONAL")
    rules = _rules(acl)
    overrides = _managed(rules[waf.COMMON_RULE_SET])["RuleActionOverrides"]
    body_size = rules["body-size"]
    stage = _rest_stage(template)
    labelled = frozenset({waf.BODY_SIZE_LABEL})

    assert overrides == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    assert body_size["Action"] == {"Block": {}}
    assert body_size["Priority"] > rules[waf.COMMON_RULE_SET]["Priority"]  # labels exist only after the group ran
    # PayPal's webhook events and staff event writes may exceed 8 KB; every other path keeps the block.
    for path in ("/{s}/api/payment/webhook/", "/api/payment/webhook", "/{s}/api/events/", "/{s}/api/events/e1/"):
        assert not _matches(body_size["Statement"], path.format(s=stage), labelled), path
    for path in ("/{s}/api/cart/", "/{s}/api/token/", "/{s}/api/payment/create/", "/{s}/api/auth/register/"):
        assert _matches(body_size["Statement"], path.format(s=stage), labelled), path
        assert not _matches(body_size["Statement"], path.format(s=stage)), path  # no label: under 8 KB


def test_every_rule_reports_metrics_and_samples_under_this_stages_names(template):
    _, acl = _acl(template, "REGIONAL")
    prefix = DEFAULTS[template.stage].resource_prefix
    for config in [acl["VisibilityConfig"], *(rule["VisibilityConfig"] for rule in acl["Rules"])]:
        assert config["CloudWatchMetricsEnabled"] is True and config["SampledRequestsEnabled"] is True
        assert config["MetricName"].startswith(prefix), config
    assert len({rule["Priority"] for rule in acl["Rules"]}) == len(acl["Rules"])


def test_the_stack_outputs_the_rest_api_web_acl(template):
    acl_id, _ = _acl(template, "REGIONAL")
    assert template.body["Outputs"]["RestApiWebAclArn"]["Value"] == {"Fn::GetAtt": [acl_id, "Arn"]}


# --- the web app's web ACL (CLOUDFRONT scope, us-east-1) -------------------------------------------------


def test_each_stage_has_an_edge_stack_in_us_east_1_holding_only_the_web_apps_web_acl(synthesis):
    for stage in STAGES:
        edge = synthesis.edge_templates[stage]
        assert synthesis.edge_regions[stage] == "us-east-1"
        assert {resource["Type"] for resource in edge.resources.values()} == {WEB_ACL}
        acl_id, acl = _acl(edge, "CLOUDFRONT")
        assert acl["Name"] == f"tickets-{stage}-web"
        assert edge.body["Outputs"]["WebAclArn"]["Value"] == {"Fn::GetAtt": [acl_id, "Arn"]}
        # The stage's own stack holds no CLOUDFRONT web ACL: it could not be created outside us-east-1.
        assert not [
            r for r in synthesis.templates[stage].of_type(WEB_ACL).values() if r["Properties"]["Scope"] != "REGIONAL"
        ]


def test_web_apps_web_acl_has_the_managed_rules_and_a_per_ip_limit_on_every_path(edge_template):
    _, acl = _acl(edge_template, "CLOUDFRONT")
    order = [rule["Name"] for rule in sorted(acl["Rules"], key=lambda r: r["Priority"])]
    rate = _rules(acl)["ip-rate"]

    assert order == [waf.IP_REPUTATION, "ip-rate", waf.COMMON_RULE_SET, waf.KNOWN_BAD_INPUTS]
    assert "RuleActionOverrides" not in _managed(_rules(acl)[waf.COMMON_RULE_SET])  # GET and HEAD only
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
        "Limit": DEFAULTS[edge_template.stage].waf_web_limit,
    }
    assert rate["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429


def test_the_distribution_has_no_web_acl_until_one_is_set(template):
    (distribution,) = template.of_type(DISTRIBUTION).values()
    assert "WebACLId" not in distribution["Properties"]["DistributionConfig"]


def test_the_distribution_takes_the_web_acl_the_stage_names():
    import aws_cdk as cdk
    from aws_cdk import aws_logs as logs

    from infra.web import WebSite

    arn = "arn:aws:wafv2:us-east-1:111122223333:global/webacl/tickets-prod-web/0a1b2c3d-4e5f"
    stack = cdk.Stack(cdk.App(), "WebAclProbe")
    WebSite(stack, "Web", stack_name="probe", log_retention=logs.RetentionDays.ONE_DAY, web_acl_arn=arn)

    assertions.Template.from_stack(stack).has_resource_properties(
        DISTRIBUTION, {"DistributionConfig": assertions.Match.object_like({"WebACLId": arn})}
    )


# --- settings --------------------------------------------------------------------------------------------


def test_the_webhook_limit_is_never_tighter_than_the_limits_meant_for_people():
    # PayPal sends every webhook of a sale from a handful of addresses (README, WAF: the arithmetic).
    for stage in STAGES:
        settings = DEFAULTS[stage]
        assert settings.waf_webhook_limit > max(
            settings.waf_ip_limit, settings.waf_token_limit, settings.waf_register_limit
        )


@pytest.mark.parametrize("value", ["9", "2000000001"])
def test_waf_limits_outside_what_waf_accepts_are_refused(value):
    with pytest.raises(ValueError, match="dev:waf_token_limit"):
        stage_settings("dev", {"dev:waf_token_limit": value}.get)


def test_the_web_acl_arn_must_be_a_cloudfront_web_acl():
    good = "arn:aws:wafv2:us-east-1:111122223333:global/webacl/tickets-dev-web/0a1b2c3d"
    assert stage_settings("dev", {"dev:web_acl_arn": good}.get).web_acl_arn == good
    for bad in ("arn:aws:wafv2:eu-west-1:111122223333:regional/webacl/x/y", "tickets-dev-web"):
        with pytest.raises(ValueError, match="dev:web_acl_arn"):
            stage_settings("dev", {"dev:web_acl_arn": bad}.get)
