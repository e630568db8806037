"""The web app (`web/`) as static files: a private S3 bucket behind CloudFront, config.json written at deploy time.

The bucket is reachable only through the distribution (Origin Access Control); CloudFront redirects HTTP to
HTTPS, serves index.html at `/`, and rewrites the two real SPA paths PayPal sends buyers back to
(`/paypal/return`, `/paypal/cancel`) to index.html, so every other missing file still answers 403/404.

Every response carries a strict Content-Security-Policy and the other security headers (a CloudFront response
headers policy): scripts, styles and everything else from the site itself, connections to the site and the
stage's APIs only, no plugins, no framing, forms posting to the site only, no referrer.

Two steps, because the functions need the site's URL (their PAYMENT_RETURN_URL) and the site's config.json and
CSP need the APIs' URLs: the bucket and distribution exist first (`WebSite(...)`, before the Chalice app), the
files and the headers policy come after it (`publish(api_base=..., ws_url=..., api_origins=...)`). The
references only point one way (functions -> distribution; deployment -> APIs, bucket, distribution; distribution
-> headers policy -> WebSocket API, which names no function), so there is no cycle.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.csp import content_security_policy

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CONFIG_OBJECT = "config.json"
# The SPA paths that must serve index.html (see web/index.html: it sets <base> for them).
SPA_PATHS = ("/paypal/return", "/paypal/cancel")

# CloudFront Functions (cloudfront-js-2.0): only these two paths, with or without a trailing slash; the query
# string (?token=...&PayerID=...) is not part of event.request.uri and passes through untouched.
_SPA_REWRITE = """\
function handler(event) {
  var request = event.request;
  var uri = request.uri.replace(/\\/+$/, '');
  if (%s.indexOf(uri) !== -1) {
    request.uri = '/index.html';
  }
  return request;
}
"""

# A <script> element without a src attribute, and its text.
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
# Two years, as HSTS preload lists ask (the header is only ever sent over HTTPS).
_HSTS_MAX_AGE = cdk.Duration.days(730)

# Ids of the stack-level singletons aws-cdk-lib adds for BucketDeployment and auto_delete_objects.
_CDK_PROVIDERS = ("Custom::CDKBucketDeployment", "Custom::S3AutoDeleteObjectsCustomResourceProvider")

# Browsers revalidate every time (the files have no content hashes in their names); CloudFront keeps them a day
# and every deploy invalidates its cache.
_CACHE_CONTROL = [
    s3deploy.CacheControl.set_public(),
    s3deploy.CacheControl.max_age(cdk.Duration.seconds(0)),
    s3deploy.CacheControl.s_max_age(cdk.Duration.days(1)),
]


def paypal_redirect_urls(frontend_url: str, site_url: str) -> dict[str, str]:
    """PAYMENT_RETURN_URL / PAYMENT_CANCEL_URL: under `frontend_url` when it is set, else under the stack's site."""
    base = (frontend_url or site_url).rstrip("/")
    return {"PAYMENT_RETURN_URL": f"{base}{SPA_PATHS[0]}", "PAYMENT_CANCEL_URL": f"{base}{SPA_PATHS[1]}"}


def inline_script_hashes(html: str) -> list[str]:
    """CSP sources allowing exactly the page's inline scripts: 'sha256-<base64>' of each one's text.

    Browsers hash the script's text as parsed, with line breaks normalized to LF, encoded as UTF-8.
    """
    hashes = []
    for match in _INLINE_SCRIPT.finditer(html):
        text = match.group(1).replace("\r\n", "\n").replace("\r", "\n")
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
        hashes.append(f"'sha256-{digest}'")
    return hashes


def spa_rewrite_code(paths: tuple[str, ...] = SPA_PATHS) -> str:
    """The viewer-request function's source: rewrites `paths` to /index.html, leaves every other URI alone."""
    listed = "[" + ", ".join(f"'{path}'" for path in paths) + "]"
    return _SPA_REWRITE % listed


class WebSite(Construct):
    """Bucket + distribution of one stage's web app; `url` is its https:// address (a token)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stack_name: str,
        log_retention: logs.RetentionDays,
        source_dir: Path = WEB_DIR,
        web_acl_arn: str | None = None,
    ) -> None:
        """`web_acl_arn`: a CLOUDFRONT web ACL (infra/waf.py EdgeStack) for the distribution, or None."""
        super().__init__(scope, construct_id)
        self._stack_name = stack_name
        self._log_retention = log_retention
        self._source_dir = source_dir
        # Nothing in the bucket is data: every deploy rewrites it from web/, so it goes with the stack.
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        self.spa_rewrite = cloudfront.Function(
            self,
            "SpaRewrite",
            code=cloudfront.FunctionCode.from_inline(spa_rewrite_code()),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment=f"{stack_name}: serve index.html at {', '.join(SPA_PATHS)}",
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{stack_name} web app",
            default_root_object="index.html",
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            web_acl_id=web_acl_arn,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                compress=True,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.spa_rewrite, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
        )
        self.url = f"https://{self.distribution.distribution_domain_name}"
        self.deployment: s3deploy.BucketDeployment | None = None
        self.headers: cloudfront.ResponseHeadersPolicy | None = None

    def publish(self, *, api_base: str, ws_url: str, api_origins: Sequence[str]) -> s3deploy.BucketDeployment:
        """Upload web/ plus a config.json holding these URLs (tokens: resolved by the deployment at deploy time),
        and answer with the security headers, the CSP letting the page connect to `api_origins`."""
        self.headers = self._headers_policy(api_origins)
        # The distribution exists before the APIs do (see the module docstring): the policy joins it now.
        self.distribution.node.default_child.add_property_override(
            "DistributionConfig.DefaultCacheBehavior.ResponseHeadersPolicyId", self.headers.response_headers_policy_id
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deployment",
            destination_bucket=self.bucket,
            sources=[
                s3deploy.Source.asset(str(self._source_dir)),
                s3deploy.Source.json_data(CONFIG_OBJECT, {"apiBase": api_base, "wsUrl": ws_url}),
            ],
            cache_control=_CACHE_CONTROL,
            distribution=self.distribution,
            distribution_paths=["/*"],
            log_group=logs.LogGroup(
                self,
                "DeploymentLogs",
                log_group_name=f"/aws/lambda/{self._stack_name}-web-deployment",
                retention=self._log_retention,
                removal_policy=cdk.RemovalPolicy.DESTROY,
            ),
        )
        self._scope_invalidation_grant(self.deployment)
        self._quiet_provider_lint()
        return self.deployment

    def _headers_policy(self, api_origins: Sequence[str]) -> cloudfront.ResponseHeadersPolicy:
        scripts = inline_script_hashes((self._source_dir / "index.html").read_text(encoding="utf-8"))
        return cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            response_headers_policy_name=f"{self._stack_name}-web-headers",
            comment=f"{self._stack_name} web app: strict CSP, HSTS, no framing, no sniffing, no referrer",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(api_origins, scripts), override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=_HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                # The legacy XSS auditor is gone from browsers, and where it remains it can be abused: off.
                xss_protection=cloudfront.ResponseHeadersXSSProtection(protection=False, override=True),
            ),
        )

    def _scope_invalidation_grant(self, deployment: s3deploy.BucketDeployment) -> None:
        """Narrow BucketDeployment's cloudfront:*Invalidation grant from every distribution to this one.

        aws-cdk-lib grants it on "*"; CloudFront takes the distribution's ARN as the resource of both actions.
        """
        policy = deployment.handler_role.node.try_find_child("DefaultPolicy")
        document = cdk.Stack.of(self).resolve(policy.document)  # the statements in their synthesized order
        found = False
        for index, statement in enumerate(document["Statement"]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action.startswith("cloudfront:") for action in actions):
                policy.node.default_child.add_property_override(
                    f"PolicyDocument.Statement.{index}.Resource", self.distribution.distribution_arn
                )
                found = True
        if not found:
            raise RuntimeError("BucketDeployment no longer grants cloudfront:CreateInvalidation: review this override")

    def _quiet_provider_lint(self) -> None:
        """Tell cfn-lint to skip W3005 on the Lambda functions aws-cdk-lib adds for the deployment and auto-delete.

        Their DependsOn on their own role repeats the dependency their Role GetAtt already makes; harmless, and
        not ours to change. Everything else about them is still linted.
        """
        for construct in cdk.Stack.of(self).node.find_all():
            if (
                isinstance(construct, cdk.CfnResource)
                and construct.cfn_resource_type == "AWS::Lambda::Function"
                and construct.node.path.split("/")[1].startswith(_CDK_PROVIDERS)
            ):
                construct.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
