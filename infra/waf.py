"""AWS WAF in front of a stage: a REGIONAL web ACL on the REST API stage, a CLOUDFRONT one for the web app.

The REST API's web ACL drops requests from known-bad addresses (AWS's IP reputation list), blocks common exploit
patterns (the core rule set, known bad inputs) and rate-limits each client IP on the paths a flood targets:
sign-in and token refresh, registration and PayPal's webhook, plus a looser limit on every other path. Rate
limits count requests per IP over WAF's 5-minute window and answer 429 in the API's error shape.

The core rule set blocks request bodies over 8 KB (SizeRestrictions_BODY). PayPal's webhook events are larger
(an order event carries the whole order, its links and payer) and staff event writes may be (5,000-character
descriptions, up to 15 KB in UTF-8): that rule only counts, and a rule of ours blocks its label on every other
path. The handlers refuse bodies over 64 KB themselves (chalicelib/http.py).

CloudFront takes only web ACLs of scope CLOUDFRONT, and those exist only in us-east-1: the web app's web ACL
lives in its own stack, `<stage>-edge` (EdgeStack), deployed to us-east-1, and the stage's distribution takes
its ARN from the `web_acl_arn` setting (README "WAF").
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.settings import StageSettings

Rule = wafv2.CfnWebACL.RuleProperty
Statement = wafv2.CfnWebACL.StatementProperty

# WAF counts a rate-based rule's requests over this window (60, 120, 300 or 600 seconds).
RATE_WINDOW_SECONDS = 300
# Paths as the app routes them; each matches with and without the API Gateway stage prefix (execute-api URLs
# carry /<stage>, a custom domain's base path mapping does not) and with anything after it (a trailing slash,
# /api/token/refresh).
TOKEN_PATHS = ("/api/token",)
REGISTER_PATHS = ("/api/auth/register",)
WEBHOOK_PATHS = ("/api/payment/webhook",)
# Where bodies over the core rule set's 8 KB are legitimate (see the module docstring).
LARGE_BODY_PATHS = (*WEBHOOK_PATHS, "/api/events")
BODY_SIZE_RULE = "SizeRestrictions_BODY"
BODY_SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"
COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
IP_REPUTATION = "AWSManagedRulesAmazonIpReputationList"
KNOWN_BAD_INPUTS = "AWSManagedRulesKnownBadInputsRuleSet"
# Decoded and normalized as API Gateway will see it, so /prod//api/%74oken counts as /prod/api/token.
_PATH_TRANSFORMATIONS = ("URL_DECODE", "NORMALIZE_PATH")
RATE_LIMITED_BODY_KEY = "rate-limited"
RATE_LIMITED_BODY = json.dumps(
    {"code": "rate_limited", "message": "Too many requests from your address; please retry in a few minutes."},
    separators=(",", ":"),
)


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def path_prefixes(paths: Sequence[str], stage: str) -> Statement:
    """Matches a URI path that starts with one of `paths`, with or without the `/<stage>` prefix."""
    prefixes = [prefix for path in paths for prefix in (path, f"/{stage}{path}")]
    return Statement(
        or_statement=wafv2.CfnWebACL.OrStatementProperty(
            statements=[
                Statement(
                    byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                        positional_constraint="STARTS_WITH",
                        search_string=prefix,
                        text_transformations=[
                            wafv2.CfnWebACL.TextTransformationProperty(priority=priority, type=kind)
                            for priority, kind in enumerate(_PATH_TRANSFORMATIONS)
                        ],
                    )
                )
                for prefix in prefixes
            ]
        )
    )


def managed_rule(group: str, priority: int, metric: str, count_only: Sequence[str] = ()) -> Rule:
    """An AWS managed rule group with its own actions, except the rules in `count_only`, which only count."""
    return Rule(
        name=group,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=Statement(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=group,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in count_only
                ]
                or None,
            )
        ),
        visibility_config=_visibility(metric),
    )


def _block(status: int, body_key: str | None = None, cors: bool = False) -> wafv2.CfnWebACL.RuleActionProperty:
    headers = [wafv2.CfnWebACL.CustomHTTPHeaderProperty(name="Access-Control-Allow-Origin", value="*")]
    return wafv2.CfnWebACL.RuleActionProperty(
        block=wafv2.CfnWebACL.BlockActionProperty(
            custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                response_code=status, custom_response_body_key=body_key, response_headers=headers if cors else None
            )
        )
    )


def rate_rule(name: str, priority: int, limit: int, scope: Statement | None, metric: str, *, api: bool) -> Rule:
    """Block a client IP that sent more than `limit` matching requests in the window, while it stays above it.

    `api`: answer 429 with the API's error body and CORS header (the web app reads it cross-origin).
    """
    return Rule(
        name=name,
        priority=priority,
        action=_block(429, RATE_LIMITED_BODY_KEY, cors=True) if api else _block(429),
        statement=Statement(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                aggregate_key_type="IP",
                limit=limit,
                evaluation_window_sec=RATE_WINDOW_SECONDS,
                scope_down_statement=scope,
            )
        ),
        visibility_config=_visibility(metric),
    )


def rest_api_rules(settings: StageSettings, stage: str) -> list[Rule]:
    """The REST API's rules in evaluation order; `stage` is the API Gateway stage name (the path prefix)."""
    metric = settings.resource_prefix + "api-"
    webhook = path_prefixes(WEBHOOK_PATHS, stage)
    not_webhook = Statement(not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=webhook))
    large_body_allowed = path_prefixes(LARGE_BODY_PATHS, stage)
    body_too_large = Statement(
        and_statement=wafv2.CfnWebACL.AndStatementProperty(
            statements=[
                Statement(
                    label_match_statement=wafv2.CfnWebACL.LabelMatchStatementProperty(
                        scope="LABEL", key=BODY_SIZE_LABEL
                    )
                ),
                Statement(not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=large_body_allowed)),
            ]
        )
    )
    return [
        managed_rule(IP_REPUTATION, 0, f"{metric}ip-reputation"),
        rate_rule(
            "token-rate",
            1,
            settings.waf_token_limit,
            path_prefixes(TOKEN_PATHS, stage),
            f"{metric}token-rate",
            api=True,
        ),
        rate_rule(
            "register-rate",
            2,
            settings.waf_register_limit,
            path_prefixes(REGISTER_PATHS, stage),
            f"{metric}register-rate",
            api=True,
        ),
        rate_rule("webhook-rate", 3, settings.waf_webhook_limit, webhook, f"{metric}webhook-rate", api=True),
        # PayPal's few sending addresses would reach a per-IP limit meant for people: the webhook has its own.
        rate_rule("ip-rate", 4, settings.waf_ip_limit, not_webhook, f"{metric}ip-rate", api=True),
        managed_rule(COMMON_RULE_SET, 5, f"{metric}common", count_only=(BODY_SIZE_RULE,)),
        Rule(
            name="body-size",
            priority=6,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=body_too_large,
            visibility_config=_visibility(f"{metric}body-size"),
        ),
        managed_rule(KNOWN_BAD_INPUTS, 7, f"{metric}known-bad-inputs"),
    ]


def web_rules(settings: StageSettings) -> list[Rule]:
    """The web app's rules: static files, GET and HEAD only, so no body rules to relax."""
    metric = settings.resource_prefix + "web-"
    return [
        managed_rule(IP_REPUTATION, 0, f"{metric}ip-reputation"),
        rate_rule("ip-rate", 1, settings.waf_web_limit, None, f"{metric}ip-rate", api=False),
        managed_rule(COMMON_RULE_SET, 2, f"{metric}common"),
        managed_rule(KNOWN_BAD_INPUTS, 3, f"{metric}known-bad-inputs"),
    ]


def _web_acl(
    scope: Construct, construct_id: str, *, name: str, kind: str, rules: list[Rule], description: str, api: bool
) -> wafv2.CfnWebACL:
    bodies = {
        RATE_LIMITED_BODY_KEY: wafv2.CfnWebACL.CustomResponseBodyProperty(
            content_type="APPLICATION_JSON", content=RATE_LIMITED_BODY
        )
    }
    return wafv2.CfnWebACL(
        scope,
        construct_id,
        name=name,
        scope=kind,
        description=description,
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        rules=rules,
        custom_response_bodies=bodies if api else None,
        visibility_config=_visibility(name),
    )


class RestApiFirewall(Construct):
    """The REST API stage's REGIONAL web ACL and its association.

    `stage_ref` must resolve to the stage's name *and* order the association after the stage: SAM creates the
    stage from the Serverless API, and `Ref <Api>.Stage` is how a template refers to it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        stage: str,
        rest_api_id: str,
        stage_ref: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.web_acl = _web_acl(
            self,
            "WebAcl",
            name=f"{settings.resource_prefix}api",
            kind="REGIONAL",
            rules=rest_api_rules(settings, stage),
            description=f"{settings.stack_name} REST API: IP reputation, rate limits, core rules, known bad inputs",
            api=True,
        )
        stack = cdk.Stack.of(self)
        self.stage_arn = cdk.Fn.join(
            "", [f"arn:{stack.partition}:apigateway:{stack.region}::/restapis/", rest_api_id, "/stages/", stage_ref]
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=self.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        cdk.Validations.of(self.association).acknowledge(
            cdk.Acknowledgment(
                id="CloudFormation-Validate::F1020",
                reason="Ref <Api>.Stage names the stage SAM generates from the Serverless API; it exists once "
                "CloudFormation has applied the SAM transform, which is when the reference is resolved.",
            )
        )


class EdgeStack(cdk.Stack):
    """The web app's CLOUDFRONT web ACL for one stage, in us-east-1 (the only region such a web ACL can live in).

    Deployed on its own (`cdk deploy <stage>-edge`); its WebAclArn output becomes the stage's `web_acl_arn`
    setting. Nothing else crosses between the two stacks, so neither imports from the other.
    """

    REGION = "us-east-1"

    def __init__(self, scope: Construct, settings: StageSettings, **kwargs) -> None:
        super().__init__(
            scope,
            f"{settings.name}-edge",
            stack_name=f"{settings.stack_name}-edge",
            env=cdk.Environment(region=self.REGION),
            description=f"tickets service, stage {settings.name}: the web app's WAF web ACL (CloudFront, us-east-1)",
            **kwargs,
        )
        self.settings = settings
        self.web_acl = _web_acl(
            self,
            "WebAcl",
            name=f"{settings.resource_prefix}web",
            kind="CLOUDFRONT",
            rules=web_rules(settings),
            description=f"{settings.stack_name} web app: IP reputation, a per-IP rate limit, core rules, known bad inputs",
            api=False,
        )
        cdk.CfnOutput(
            self,
            "WebAclArn",
            value=self.web_acl.attr_arn,
            description=f"Deploy {settings.name} with -c {settings.name}:web_acl_arn=<this> to put it on the web app",
        )
