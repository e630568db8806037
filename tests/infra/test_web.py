"""The web app ships with each stage: a private bucket behind CloudFront, config.json made from the stage's APIs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.settings import STAGES, stage_settings
from infra.web import SPA_PATHS, WEB_DIR, paypal_redirect_urls, spa_rewrite_code
from tests.infra.cfn import ROLE, Template, as_list, literal_text, references

assertions = pytest.importorskip(
    "aws_cdk.assertions", reason="aws-cdk-lib is not installed: pip install -r requirements-infra.txt"
)
pytestmark = pytest.mark.slow

BUCKET = "AWS::S3::Bucket"
BUCKET_POLICY = "AWS::S3::BucketPolicy"
DISTRIBUTION = "AWS::CloudFront::Distribution"
OAC = "AWS::CloudFront::OriginAccessControl"
CF_FUNCTION = "AWS::CloudFront::Function"
DEPLOYMENT = "Custom::CDKBucketDeployment"
MARKER = re.compile(r"<<marker:0xbaba:\d+>>")


def _one(template: Template, kind: str) -> tuple[str, dict]:
    found = template.of_type(kind)
    assert len(found) == 1, f"{template.stage}: expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def _distribution_config(template: Template) -> dict:
    _, distribution = _one(template, DISTRIBUTION)
    return distribution["Properties"]["DistributionConfig"]


_CDK_TEMPLATES: dict[int, object] = {}


def _cdk_template(template: Template):
    """The template as aws_cdk.assertions reads it (one conversion per synthesized template)."""
    if id(template.body) not in _CDK_TEMPLATES:
        _CDK_TEMPLATES[id(template.body)] = assertions.Template.from_json(template.body)
    return _CDK_TEMPLATES[id(template.body)]


def _staged_asset(tmp_path_factory, object_key: str) -> Path:
    """The folder synthesis staged for an asset the deployment reads (`<hash>.zip` in the template)."""
    name = f"asset.{object_key.removesuffix('.zip')}"
    found = sorted(tmp_path_factory.getbasetemp().glob(f"*/{name}"))
    assert found, f"{name} is not in this session's cloud assembly"
    return found[0]


def _run_spa_rewrite(uris: list[str]) -> list[str]:
    """The viewer-request function's answer for each URI, run by Node (the runtime jsii already needs)."""
    node = shutil.which("node")
    assert node, "node is needed to synthesize with aws-cdk-lib"
    script = (
        f"{spa_rewrite_code()}\n"
        f"const uris = {json.dumps(uris)};\n"
        "console.log(JSON.stringify(uris.map((uri) => handler({request: {uri, querystring: {token: {value: 'X'}}}})"
        ".uri)));\n"
    )
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


# --- the bucket ------------------------------------------------------------------------------------


def test_web_bucket_blocks_public_access_is_encrypted_and_refuses_plain_http(template):
    cdk_template = _cdk_template(template)
    cdk_template.has_resource_properties(
        BUCKET,
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "WebsiteConfiguration": assertions.Match.absent(),
        },
    )
    cdk_template.has_resource_properties(
        BUCKET_POLICY,
        {
            "PolicyDocument": {
                "Statement": assertions.Match.array_with(
                    [
                        assertions.Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_only_this_stages_distribution_may_read_the_bucket(template):
    bucket_id, _ = _one(template, BUCKET)
    distribution_id, _ = _one(template, DISTRIBUTION)
    _, policy = _one(template, BUCKET_POLICY)
    assert references(policy["Properties"]["Bucket"]) == {bucket_id}
    reads = [
        statement
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow" and "s3:GetObject" in as_list(statement["Action"])
    ]
    assert len(reads) == 1, reads
    (read,) = reads
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    source = read["Condition"]["StringEquals"]["AWS:SourceArn"]
    assert references(source) == {distribution_id} and ":distribution/" in literal_text(source)
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if statement["Effect"] == "Allow":
            assert statement["Principal"] != "*" and statement["Principal"] != {"AWS": "*"}, statement


# --- the distribution ------------------------------------------------------------------------------


def test_distribution_reaches_the_bucket_through_origin_access_control(template):
    bucket_id, _ = _one(template, BUCKET)
    oac_id, _ = _one(template, OAC)
    _cdk_template(template).has_resource_properties(
        OAC,
        {
            "OriginAccessControlConfig": {
                "OriginAccessControlOriginType": "s3",
                "SigningBehavior": "always",
                "SigningProtocol": "sigv4",
            }
        },
    )
    (origin,) = _distribution_config(template)["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": [bucket_id, "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac_id, "Id"]}
    # An origin access identity (the legacy mechanism) would show here; OAC leaves it empty.
    assert origin["S3OriginConfig"]["OriginAccessIdentity"] == ""


def test_distribution_redirects_http_to_https_and_serves_index_html_at_the_root(template):
    _cdk_template(template).has_resource_properties(
        DISTRIBUTION,
        {
            "DistributionConfig": assertions.Match.object_like(
                {
                    "DefaultRootObject": "index.html",
                    "Enabled": True,
                    "DefaultCacheBehavior": assertions.Match.object_like(
                        {"ViewerProtocolPolicy": "redirect-to-https", "AllowedMethods": ["GET", "HEAD"]}
                    ),
                }
            )
        },
    )
    assert "CacheBehaviors" not in _distribution_config(template)  # every path takes the default behaviour


def test_paypal_return_and_cancel_paths_are_rewritten_to_index_html_on_every_viewer_request(template):
    function_id, function = _one(template, CF_FUNCTION)
    assert function["Properties"]["FunctionCode"] == spa_rewrite_code()
    assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["Properties"]["AutoPublish"] is True
    associations = _distribution_config(template)["DefaultCacheBehavior"]["FunctionAssociations"]
    assert associations == [
        {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]}}
    ]


def test_spa_rewrite_serves_index_html_for_the_paypal_paths_only():
    rewritten = ["/paypal/return", "/paypal/cancel", "/paypal/return/", "/paypal/cancel//"]
    untouched = ["/", "/index.html", "/app.js", "/js/api.js", "/config.json", "/paypal/", "/paypal/returned", "/x"]

    assert set(SPA_PATHS) == {"/paypal/return", "/paypal/cancel"}
    assert _run_spa_rewrite(rewritten) == ["/index.html"] * len(rewritten)
    assert _run_spa_rewrite(untouched) == untouched


# --- the files and config.json ---------------------------------------------------------------------


def _deployment(template: Template) -> dict:
    _, deployment = _one(template, DEPLOYMENT)
    return deployment["Properties"]


def test_deployment_writes_into_this_stages_bucket_and_invalidates_its_distribution(template):
    bucket_id, _ = _one(template, BUCKET)
    distribution_id, _ = _one(template, DISTRIBUTION)
    props = _deployment(template)

    assert props["DestinationBucketName"] == {"Ref": bucket_id}
    assert props["DistributionId"] == {"Ref": distribution_id}
    assert props["DistributionPaths"] == ["/*"]
    assert props["Prune"] is True  # files removed from web/ disappear from the site
    # The file names carry no content hash: browsers must revalidate, CloudFront is invalidated on each deploy.
    assert "max-age=0" in props["SystemMetadata"]["cache-control"]


def test_deployment_may_invalidate_only_its_own_distribution(template):
    distribution_id, _ = _one(template, DISTRIBUTION)
    grants = [
        (role, grant)
        for role in template.of_type(ROLE)
        for grant in template.grants_of_role(role)
        if grant.action.startswith("cloudfront:")
    ]
    assert {grant.action for _, grant in grants} == {"cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"}
    for role, grant in grants:
        assert grant.targets == {distribution_id}, (role, grant.resource)


def test_deployment_uploads_the_web_folder(template, tmp_path_factory):
    props = _deployment(template)
    staged = [_staged_asset(tmp_path_factory, key) for key in props["SourceObjectKeys"]]
    expected = sorted(str(p.relative_to(WEB_DIR)) for p in WEB_DIR.rglob("*") if p.is_file())

    listings = [sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) for folder in staged]
    assert expected in listings
    assert "index.html" in expected


def test_config_json_is_built_from_this_stages_rest_and_websocket_urls_at_deploy_time(template, tmp_path_factory):
    stage = template.stage
    props = _deployment(template)
    configs = [
        (index, _staged_asset(tmp_path_factory, key) / "config.json")
        for index, key in enumerate(props["SourceObjectKeys"])
    ]
    configs = [(index, path) for index, path in configs if path.exists()]
    assert len(configs) == 1, "expected one source holding config.json"
    ((index, path),) = configs
    markers = props["SourceMarkers"][index]

    # The file holds placeholders only; the deployment substitutes the CloudFormation values at deploy time.
    text = path.read_text()
    assert "execute-api" not in text
    placeholders = MARKER.findall(text)
    assert sorted(placeholders) == sorted(markers)
    config = json.loads(MARKER.sub(lambda m: json.dumps(m.group(0)), text))
    assert set(config) == {"apiBase", "wsUrl"}

    api_base, ws_url = markers[config["apiBase"]], markers[config["wsUrl"]]
    # Each value replaces a whole JSON string, quotes included: "https://<id>.execute-api.<region>.<suffix>/...".
    host = [".execute-api.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]
    assert api_base == {"Fn::Join": ["", ['"https://', {"Ref": "RestAPI"}, *host, f'/{stage}/api"']]}
    assert ws_url == {"Fn::Join": ["", ['"wss://', {"Ref": "WebsocketAPI"}, *host, f'/{stage}"']]}


def test_config_json_points_at_the_same_urls_as_the_stack_outputs(template):
    props = _deployment(template)
    values = [value for markers in props["SourceMarkers"] for value in markers.values()]
    outputs = template.body["Outputs"]
    rest_url = outputs["RestApiUrl"]["Value"]["Fn::Join"][1]
    ws_url = outputs["WebSocketUrl"]["Value"]["Fn::Join"][1]
    # Same parts, only wrapped in JSON quotes (and "api" appended to the REST base URL).
    assert {"Fn::Join": ["", ['"' + rest_url[0], *rest_url[1:-1], rest_url[-1] + 'api"']]} in values
    assert {"Fn::Join": ["", ['"' + ws_url[0], *ws_url[1:-1], ws_url[-1] + '"']]} in values


# --- the stack around it ---------------------------------------------------------------------------


def test_stack_outputs_the_web_url(template):
    distribution_id, _ = _one(template, DISTRIBUTION)
    _cdk_template(template).has_output(
        "WebUrl", {"Value": {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]}}
    )


def test_functions_send_paypal_buyers_back_to_this_stages_web_app(template):
    distribution_id, _ = _one(template, DISTRIBUTION)
    domain = {"Fn::GetAtt": [distribution_id, "DomainName"]}
    for name, function in template.functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["PAYMENT_RETURN_URL"] == {"Fn::Join": ["", ["https://", domain, "/paypal/return"]]}, name
        assert env["PAYMENT_CANCEL_URL"] == {"Fn::Join": ["", ["https://", domain, "/paypal/cancel"]]}, name


def test_the_site_and_the_functions_that_link_to_it_form_no_dependency_cycle(template):
    # The functions need the distribution's domain, config.json needs the APIs (which need the functions):
    # CloudFormation would refuse a cycle at deploy time; synthesis alone does not notice one.
    assertions.Template.from_json(template.body, skip_cyclical_dependencies_check=False)


def test_dev_and_prod_each_have_their_own_bucket_distribution_and_deployment(synthesis):
    account_wide_names = {}
    for stage in STAGES:
        template = synthesis.templates[stage]
        for kind in (BUCKET, DISTRIBUTION, OAC, CF_FUNCTION, DEPLOYMENT):
            _one(template, kind)
        _, bucket = _one(template, BUCKET)
        assert "BucketName" not in bucket["Properties"]  # CloudFormation makes a unique name per stack
        _, oac = _one(template, OAC)
        _, function = _one(template, CF_FUNCTION)
        account_wide_names[stage] = (
            oac["Properties"]["OriginAccessControlConfig"]["Name"],
            literal_text(function["Properties"]["Name"]),
        )
    # OAC and CloudFront Function names are unique per account, whatever the region: no two stages may share one.
    for position in range(2):
        names = [account_wide_names[stage][position] for stage in STAGES]
        assert len(set(names)) == len(names), names


# --- settings --------------------------------------------------------------------------------------


def test_paypal_returns_to_the_stacks_site_unless_a_frontend_url_is_set():
    assert paypal_redirect_urls("", "https://d111.cloudfront.net") == {
        "PAYMENT_RETURN_URL": "https://d111.cloudfront.net/paypal/return",
        "PAYMENT_CANCEL_URL": "https://d111.cloudfront.net/paypal/cancel",
    }
    assert paypal_redirect_urls("https://tickets.example.org/", "https://d111.cloudfront.net") == {
        "PAYMENT_RETURN_URL": "https://tickets.example.org/paypal/return",
        "PAYMENT_CANCEL_URL": "https://tickets.example.org/paypal/cancel",
    }


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_sends_buyers_to_a_fixed_frontend_by_default(stage):
    assert stage_settings(stage).frontend_url == ""


def test_a_frontend_url_that_is_not_an_http_url_is_refused():
    assert stage_settings("prod", {"prod:frontend_url": "https://tickets.example.org"}.get).frontend_url == (
        "https://tickets.example.org"
    )
    with pytest.raises(ValueError, match="prod:frontend_url"):
        stage_settings("prod", {"prod:frontend_url": "tickets.example.org"}.get)
