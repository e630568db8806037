"""What API Gateway answers by itself on the REST API follows the error contract and carries CORS, on each stage."""

from __future__ import annotations

import json
import re

import pytest

from chalicelib import errors, http
from tests.infra.cfn import Template, references

assertions = pytest.importorskip(
    "aws_cdk.assertions", reason="aws-cdk-lib is not installed: pip install -r requirements-infra.txt"
)
pytestmark = pytest.mark.slow

REST_API = "AWS::Serverless::Api"
GATEWAY_RESPONSE = "AWS::ApiGateway::GatewayResponse"
KEEP_STATUS = None
# response type -> (status API Gateway must answer, or KEEP_STATUS for its own; the contract's code)
EXPECTED = {
    "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found"),
    "THROTTLED": ("429", "rate_limited"),
    "QUOTA_EXCEEDED": ("429", "rate_limited"),
    "REQUEST_TOO_LARGE": ("413", "payload_too_large"),
    "UNSUPPORTED_MEDIA_TYPE": ("415", "unsupported_media_type"),
    "DEFAULT_4XX": (KEEP_STATUS, "bad_request"),
    "DEFAULT_5XX": (KEEP_STATUS, "internal_error"),
}
# What the SAM transform accepts in GatewayResponses (anything else fails the deployment's changeset).
SAM_RESPONSE_KEYS = {"ResponseParameters", "ResponseTemplates", "StatusCode"}
SAM_PARAMETER_KEYS = {"Headers", "Paths", "QueryStrings"}
SNAKE_CASE = re.compile(r"^[a-z]+(_[a-z]+)*$")

_CDK_TEMPLATES: dict[int, object] = {}


def _cdk_template(template: Template):
    """The template as aws_cdk.assertions reads it (one conversion per synthesized template)."""
    if id(template.body) not in _CDK_TEMPLATES:
        _CDK_TEMPLATES[id(template.body)] = assertions.Template.from_json(template.body)
    return _CDK_TEMPLATES[id(template.body)]


def _rest_api(template: Template) -> tuple[str, dict]:
    """The stage's REST API: the one the RestApiUrl output (and so the web app's apiBase) points at."""
    (logical_id,) = references(template.body["Outputs"]["RestApiUrl"]["Value"])
    assert template.resources[logical_id]["Type"] == REST_API, logical_id
    return logical_id, template.props(logical_id)


@pytest.mark.parametrize("response_type", sorted(EXPECTED))
def test_gateway_error_answers_with_contract_status_json_template_and_cors(template, response_type):
    status, code = EXPECTED[response_type]
    expected_response = {
        "ResponseParameters": {"Headers": {"Access-Control-Allow-Origin": "'*'"}},
        "ResponseTemplates": {"application/json": assertions.Match.string_like_regexp(f'"code":"{code}"')},
        "StatusCode": status if status is not KEEP_STATUS else assertions.Match.absent(),
    }
    _cdk_template(template).has_resource_properties(
        REST_API,
        {"StageName": template.stage, "GatewayResponses": {response_type: expected_response}},
    )


@pytest.mark.parametrize("response_type", sorted(EXPECTED))
def test_gateway_error_body_is_exactly_code_and_a_human_message(template, response_type):
    _, api = _rest_api(template)
    templates = api["GatewayResponses"][response_type]["ResponseTemplates"]
    assert set(templates) == {"application/json"}
    body = json.loads(templates["application/json"])
    assert set(body) == {"code", "message"}
    assert body["code"] == EXPECTED[response_type][1]
    assert SNAKE_CASE.match(body["code"])
    # A fixed sentence: no $context.error.messageString or other text of API Gateway's own reaches the client.
    assert body["message"].strip() and "$" not in body["message"]


def test_gateway_responses_belong_to_the_stage_rest_api_the_web_app_calls(template):
    logical_id, api = _rest_api(template)
    assert set(template.of_type(REST_API)) == {logical_id}, "one REST API per stage"
    assert api["StageName"] == template.stage
    assert set(api["GatewayResponses"]) >= set(EXPECTED)
    # SAM puts GatewayResponses into this inline OpenAPI body, so they ship inside every deployment of the
    # stage. Standalone GatewayResponse resources would not: a redeployment of the body drops them.
    assert isinstance(api["DefinitionBody"], dict) and api["DefinitionBody"]["paths"]
    _cdk_template(template).resource_count_is(GATEWAY_RESPONSE, 0)


def test_gateway_responses_use_only_what_the_sam_transform_accepts(template):
    _, api = _rest_api(template)
    for response_type, response in api["GatewayResponses"].items():
        assert set(response) <= SAM_RESPONSE_KEYS, response_type
        assert set(response.get("ResponseParameters", {})) <= SAM_PARAMETER_KEYS, response_type
        if "StatusCode" in response:
            assert isinstance(response["StatusCode"], str) and re.fullmatch(r"[1-5]\d\d", response["StatusCode"])
        # SAM refuses intrinsic functions anywhere in GatewayResponses.
        assert not references(response) and "Fn::" not in json.dumps(response), response_type


def test_each_fixed_status_matches_what_the_lambda_answers_for_the_same_code():
    by_code = {cls.code: cls for cls in _domain_errors()}
    for response_type, (status, code) in EXPECTED.items():
        if status is KEEP_STATUS:
            continue
        assert code in by_code, f"{response_type}: no domain error carries {code}"
        assert http.status_for(by_code[code]()) == int(status), response_type


def test_the_kept_statuses_use_the_codes_the_lambda_uses_for_its_own_4xx_and_5xx():
    assert http.status_for(errors.BadRequest()) == 400
    assert EXPECTED["DEFAULT_4XX"][1] == errors.BadRequest.code
    assert http.internal_error().body["code"] == EXPECTED["DEFAULT_5XX"][1]


def _domain_errors() -> list[type[errors.DomainError]]:
    found, pending = [], [errors.DomainError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
