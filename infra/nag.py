"""cdk-nag's AwsSolutions checks on every stack, and the reason for each finding we accept.

`add_checks(app)` runs the checks at synthesis: an error makes `cdk synth` / `cdk deploy` refuse the app and
`make package` fail; a warning is printed (and listed by tests/infra/test_nag.py). What was cheap and right is
fixed in the stacks themselves; what remains is acknowledged here, each time on the one resource concerned
(never a whole stack), for the exact IAM5 findings (appliesTo), with the reason a reviewer can check.

Chalice's SAM resources (AWS::Serverless::Function, ::Api) are not inspected by cdk-nag: tests/infra covers
them (test_permissions.py for their roles, test_resources.py and test_concurrency.py for their settings).
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

from infra import access
from infra.stack import TicketsStack

# The singleton aws-cdk-lib adds for BucketDeployment (a Lambda function and its role).
_BUCKET_DEPLOYMENT_PROVIDER = "Custom::CDKBucketDeployment"


def add_checks(app: cdk.App) -> None:
    """Run AwsSolutions on every stack of `app` at synthesis (verbose: each finding says how to fix it)."""
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))


def _regex(pattern: str) -> RegexAppliesTo:
    return RegexAppliesTo(regex=f"/{pattern}/g")


def _acknowledge(construct: IConstruct, rule: str, reason: str, applies_to: Iterable | None = None) -> None:
    suppression = NagPackSuppression(
        id=f"AwsSolutions-{rule}", reason=reason, applies_to=list(applies_to or []) or None
    )
    NagSuppressions.add_resource_suppressions(construct, [suppression], apply_to_children=True)


def acknowledge_stage(stack: TicketsStack) -> None:
    """Every finding the stage's stack keeps, with its reason."""
    _function_roles(stack)
    _bucket_deployment(stack)
    _secrets(stack)
    _failure_queues(stack)
    _websocket_api(stack)
    _web(stack)


def _function_roles(stack: TicketsStack) -> None:
    index_reason = (
        "aws-cdk-lib's table grants add <table ARN>/index/* so that queries on the table's own secondary indexes "
        "work; the wildcard never leaves that one table, and infra/access.py says which tables a function gets."
    )
    for name, role in stack.roles.items():
        function = stack.functions[name]["Properties"]
        _acknowledge(role, "IAM5", index_reason, [_regex(r"^Resource::<\w+Table\w+\.Arn>\/index\/\*$")])
        if access.FUNCTIONS[name].posts_to_connections:
            _acknowledge(
                role,
                "IAM5",
                "execute-api:ManageConnections on @connections/*: connection ids exist only at run time; the ARN is "
                "this stage's WebSocket API and stage only.",
                [_regex(r"^Resource::arn:<AWS::Partition>:execute-api:.*\/@connections\/\*$")],
            )
        streams = any(event["Type"] == "DynamoDB" for event in (function.get("Events") or {}).values())
        if streams or function.get("Tracing") == "Active":
            _acknowledge(
                role,
                "IAM5",
                "Only actions without resource-level permissions are granted on *: dynamodb:ListStreams (stream "
                "consumers) and xray:PutTraceSegments / PutTelemetryRecords (traced stages); "
                "tests/infra/test_permissions.py fails on any other action granted on *.",
                ["Resource::*"],
            )


def _bucket_deployment(stack: TicketsStack) -> None:
    provider = next(child for child in stack.node.children if child.node.id.startswith(_BUCKET_DEPLOYMENT_PROVIDER))
    _acknowledge(
        provider,
        "L1",
        "aws-cdk-lib's BucketDeployment handler: the library pins its runtime, and it runs only during deploys.",
    )
    _acknowledge(
        provider,
        "IAM4",
        "AWSLambdaBasicExecutionRole on aws-cdk-lib's BucketDeployment handler: the managed policy for its "
        "CloudWatch Logs, chosen by the library; the function runs only during deploys.",
        ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    )
    _acknowledge(
        provider,
        "IAM5",
        "aws-cdk-lib's BucketDeployment grants: read the CDK asset bucket, write and prune this stage's web bucket "
        "(the library's s3 action groups); its cloudfront:*Invalidation grant on * is narrowed to this stage's "
        "distribution by WebSite._scope_invalidation_grant, a raw override cdk-nag does not read "
        "(tests/infra/test_web.py checks the synthesized policy).",
        [
            _regex(r"^Action::s3:\w+\*$"),
            "Resource::*",
            _regex(r"^Resource::<WebBucket\w+\.Arn>\/\*$"),
            _regex(r"^Resource::arn:<AWS::Partition>:s3:::cdk-\w+-assets-<AWS::AccountId>-<AWS::Region>\/\*$"),
        ],
    )


def _secrets(stack: TicketsStack) -> None:
    _acknowledge(
        stack.secrets[access.JWT],
        "SMG4",
        "Rotating the JWT signing key signs every user out; it is rotated by hand when needed "
        "(infra/README.md, Secrets), not on a schedule.",
    )
    _acknowledge(
        stack.secrets[access.PAYPAL],
        "SMG4",
        "PayPal issues the client id and secret: they are rotated in PayPal's dashboard, then stored here by hand "
        "(infra/README.md, Secrets); no rotation function can create them.",
    )
    _acknowledge(
        stack.secrets[access.TICKET_KEYS],
        "SMG4",
        "E-ticket keys are rotated by adding a key (`python -m tools.ticket_keys rotate`): the old keys must stay to "
        "verify tickets already issued, which a Secrets Manager rotation (a replacement) would break.",
    )


def _failure_queues(stack: TicketsStack) -> None:
    for queue in stack.failure_queues.values():
        _acknowledge(
            queue,
            "SQS3",
            "This queue is itself a dead-letter destination: the tickets stream consumer's on-failure queue, "
            "alarmed as soon as it is not empty.",
        )


def _websocket_api(stack: TicketsStack) -> None:
    _acknowledge(
        stack.chalice.get_resource("WebsocketConnectRoute"),
        "APIG4",
        "$connect authorizes in its handler: WebsocketConnect verifies the access token (?token=) and refuses the "
        "connection; a Lambda authorizer would verify the same token in a second function.",
    )
    for route in ("WebsocketMessageRoute", "WebsocketDisconnectRoute"):
        _acknowledge(
            stack.chalice.get_resource(route),
            "APIG4",
            "API Gateway authorizes WebSocket APIs on $connect only; this route runs only on a connection $connect "
            "accepted, and the handler acts for the user stored with that connection.",
        )
    _acknowledge(
        stack.chalice.get_resource("WebsocketAPIStage"),
        "APIG1",
        "Access logs of an API Gateway WebSocket stage need the account's API Gateway CloudWatch role, an "
        "account-wide setting no stage stack may own (infra/README.md, WAF and logs); handlers log every request.",
    )


def _web(stack: TicketsStack) -> None:
    _acknowledge(
        stack.web.bucket,
        "S1",
        "The bucket holds copies of web/, readable only by this stage's distribution (OAC): no request reaches it "
        "from anyone else, so its access log would only repeat CloudFront's cache misses.",
    )
    distribution = stack.web.distribution
    _acknowledge(
        distribution,
        "CFR1",
        "Tickets are sold to anyone, wherever they are: no country is refused.",
    )
    _acknowledge(
        distribution,
        "CFR3",
        "Public static files only; who sends what is visible in the web ACL's metrics and sampled requests. "
        "Standard logs would need an ACL-enabled log bucket (legacy) or a us-east-1 delivery (v2).",
    )
    _acknowledge(
        distribution,
        "CFR4",
        "The distribution uses CloudFront's default *.cloudfront.net certificate, whose security policy CloudFront "
        "fixes at TLSv1; a custom domain with an ACM certificate (infra/README.md) lets TLSv1.2_2021 apply.",
    )
