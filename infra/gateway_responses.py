"""The REST API's own error answers (API Gateway replies before any Lambda runs) in the contract's error shape.

API Gateway answers an unknown path or method, throttling, an oversize body, an unsupported media type and a
failed or timed-out integration itself, with `{"message": ...}` and no CORS header, so the web app (served from
CloudFront, another origin) would see an opaque failure. Each kind below gets the contract's
`{"code", "message"}` body and `Access-Control-Allow-Origin: *`.

They are set through the SAM `GatewayResponses` property of the Chalice `RestAPI` (an AWS::Serverless::Api),
not as separate AWS::ApiGateway::GatewayResponse resources: SAM writes them into the API's OpenAPI body
(`x-amazon-apigateway-gateway-responses`), so they are part of every deployment and change the deployment's
hash. Separate resources only reach the stage at the next deployment, and the next deployment that re-imports
the body (any route change) silently drops them from the API (aws/serverless-application-model#390, #623).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk

# A static header value is a quoted literal in API Gateway's mapping syntax.
ALLOW_ORIGIN = "'*'"
JSON = "application/json"


@dataclass(frozen=True)
class GatewayError:
    """One kind of answer API Gateway gives by itself, as the contract says it."""

    response_type: str
    code: str
    message: str
    # None keeps the status API Gateway chose (the DEFAULT_4XX / DEFAULT_5XX families cover several).
    status: str | None = None

    @property
    def body(self) -> str:
        return json.dumps({"code": self.code, "message": self.message}, separators=(",", ":"))


GATEWAY_ERRORS: tuple[GatewayError, ...] = (
    # An unknown path, and on REST APIs an unknown method on a known path too (no 405 from API Gateway).
    GatewayError("MISSING_AUTHENTICATION_TOKEN", "not_found", "No such resource.", "404"),
    GatewayError("THROTTLED", "rate_limited", "Too many requests; please retry shortly.", "429"),
    GatewayError("QUOTA_EXCEEDED", "rate_limited", "Too many requests; please retry later.", "429"),
    GatewayError("REQUEST_TOO_LARGE", "payload_too_large", "The request body is too large.", "413"),
    GatewayError("UNSUPPORTED_MEDIA_TYPE", "unsupported_media_type", "Send the body as application/json.", "415"),
    # The rest: this API has no authorizers, API keys, request validators or WAF, so what remains is rare.
    GatewayError("DEFAULT_4XX", "bad_request", "The request was refused."),
    # Integration failures and timeouts: never API Gateway's own text.
    GatewayError("DEFAULT_5XX", "internal_error", "Something went wrong on our side; please retry."),
)


def sam_gateway_responses(errors: tuple[GatewayError, ...] = GATEWAY_ERRORS) -> dict[str, dict]:
    """The value of AWS::Serverless::Api `GatewayResponses` for these errors."""
    responses: dict[str, dict] = {}
    for error in errors:
        response: dict = {
            "ResponseParameters": {"Headers": {"Access-Control-Allow-Origin": ALLOW_ORIGIN}},
            "ResponseTemplates": {JSON: error.body},
        }
        if error.status is not None:
            response["StatusCode"] = error.status
        responses[error.response_type] = response
    return responses


def add_gateway_responses(rest_api: cdk.CfnResource) -> None:
    """Give the Chalice REST API (its `RestAPI` AWS::Serverless::Api) the contract's gateway responses."""
    rest_api.add_property_override("GatewayResponses", sam_gateway_responses())
