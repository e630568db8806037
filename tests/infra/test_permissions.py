"""Least privilege: one role per function, holding exactly what infra/access.py and its triggers call for."""

from __future__ import annotations

import pytest

from chalicelib import tables
from infra import access
from infra.settings import DEFAULTS
from tests.infra.cfn import LOG_GROUP, POLICY, QUEUE, ROLE, SECRET, TABLE, Grant, Template, literal_text, references

pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed: pip install -r requirements-infra.txt")
pytestmark = pytest.mark.slow

DYNAMODB_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
DYNAMODB_READS = {"dynamodb:GetItem", "dynamodb:Query"}
STREAM_READS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
SQS_CONSUME = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
SQS_DESCRIBE = {"sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
SECRET_READS = {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
LOG_WRITES = {"logs:CreateLogStream", "logs:PutLogEvents"}
XRAY_WRITES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _all_grants(template: Template) -> list[tuple[str, Grant]]:
    found = []
    for role in template.of_type(ROLE):
        found.extend((role, grant) for grant in template.grants_of_role(role))
    for name, policy in template.of_type(POLICY).items():
        if not template.of_type(ROLE).keys() & references(policy["Properties"].get("Roles", [])):
            raise AssertionError(f"{name} is attached to no role of this stack")
    return found


def test_no_statement_allows_every_action_or_every_action_of_a_service(template):
    for role, grant in _all_grants(template):
        assert grant.action != "*" and not grant.action.endswith(":*"), (role, grant.action)


def test_only_dynamodb_list_streams_and_xray_are_granted_on_every_resource(template):
    for role, grant in _all_grants(template):
        if grant.is_wildcard:
            assert grant.action in {"dynamodb:ListStreams", *XRAY_WRITES}, (role, grant.action)


def test_each_function_has_its_own_role_that_only_lambda_can_assume(template):
    roles = {name: template.role_of(name) for name in template.functions}
    assert len(set(roles.values())) == len(roles), roles
    for role in roles.values():
        props = template.props(role)
        assert "ManagedPolicyArns" not in props  # AWSLambdaBasicExecutionRole would allow logs on "*"
        (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert statement["Action"] == "sts:AssumeRole"


def test_functions_are_created_after_their_role_policy(template):
    # Otherwise an event source mapping may be created before its function may read the queue or stream.
    for name in template.functions:
        role = template.role_of(name)
        policies = [
            p for p, policy in template.of_type(POLICY).items() if role in references(policy["Properties"]["Roles"])
        ]
        assert policies, name
        assert set(policies) <= set(template.resources[name].get("DependsOn", [])), name


class _Expected:
    """What one function may do in one stage, from the access map plus its event sources."""

    def __init__(self, template: Template, function: str) -> None:
        prefix = DEFAULTS[template.stage].resource_prefix
        grants = access.FUNCTIONS[function]
        props = template.props(function)
        self.tables = {
            template.named(TABLE, "TableName", f"{prefix}{t}")[0]: level for t, level in grants.tables.items()
        }
        self.sends = {template.named(QUEUE, "QueueName", tables.queue(q).name(prefix))[0] for q in grants.sends_to}
        self.consumes: set[str] = set()
        self.streams: set[str] = set()
        for event in (props.get("Events") or {}).values():
            if event["Type"] == "SQS":
                self.consumes |= references(event["Properties"]["Queue"])
            elif event["Type"] == "DynamoDB":
                self.streams |= references(event["Properties"]["Stream"])
                self.sends |= references(event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"])
        secret_ids = {
            secret["Properties"]["Name"].rsplit("/", 1)[1]: name for name, secret in template.of_type(SECRET).items()
        }
        self.secret_keys = set(grants.secrets)
        self.secrets = {secret_ids[key] for key in grants.secrets}
        self.posts = grants.posts_to_connections
        self.tracing = props.get("Tracing") == "Active"
        self.log_group, _ = template.named(LOG_GROUP, "LogGroupName", f"/aws/lambda/{props['FunctionName']}")


def _check_dynamodb(expected: _Expected, grants: list[Grant]) -> None:
    data = [g for g in grants if g.action.startswith("dynamodb:") and not g.is_wildcard and not _is_stream(g)]
    for grant in data:
        assert grant.targets <= set(expected.tables), grant
        if grant.action in DYNAMODB_WRITES:
            assert all(expected.tables[t] == access.WRITE for t in grant.targets), grant
    for table, level in expected.tables.items():
        actions = {g.action for g in data if table in g.targets}
        assert DYNAMODB_READS <= actions, (table, actions)
        assert (DYNAMODB_WRITES <= actions) == (level == access.WRITE), (table, actions)
    streams = [g for g in grants if _is_stream(g)]
    assert {t for g in streams for t in g.targets} == expected.streams
    assert all(g.action in STREAM_READS for g in streams)
    wildcard = {g.action for g in grants if g.action.startswith("dynamodb:") and g.is_wildcard}
    assert wildcard == ({"dynamodb:ListStreams"} if expected.streams else set())


def _is_stream(grant: Grant) -> bool:
    resource = grant.resource
    return isinstance(resource, dict) and resource.get("Fn::GetAtt", [None, None])[1] == "StreamArn"


def _check_sqs(expected: _Expected, grants: list[Grant]) -> None:
    sqs = [g for g in grants if g.action.startswith("sqs:")]
    assert {t for g in sqs if g.action == "sqs:SendMessage" for t in g.targets} == expected.sends
    assert {t for g in sqs if g.action in SQS_CONSUME for t in g.targets} == expected.consumes
    for queue in expected.consumes:
        assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= {g.action for g in sqs if queue in g.targets}
    for grant in sqs:
        assert grant.action in {"sqs:SendMessage", *SQS_CONSUME, *SQS_DESCRIBE}, grant
        assert grant.targets <= expected.sends | expected.consumes, grant


def _check_secrets(template: Template, expected: _Expected, grants: list[Grant]) -> None:
    secret = [g for g in grants if g.action.startswith("secretsmanager:")]
    assert {g.action for g in secret} <= SECRET_READS
    assert {t for g in secret for t in g.targets} == expected.secrets
    parameters = {literal_text(g.resource) for g in grants if g.action.startswith("ssm:")}
    assert {g.action for g in grants if g.action.startswith("ssm:")} <= {"ssm:GetParameter"}
    assert {p.rsplit("/", 1)[1] for p in parameters} == expected.secret_keys
    for parameter in parameters:
        assert parameter.split(":parameter", 1)[1].startswith(
            f"/aws/reference/secretsmanager/tickets-{template.stage}/"
        )


def _check_connections(template: Template, expected: _Expected, grants: list[Grant]) -> None:
    manage = [g for g in grants if g.action.startswith("execute-api:")]
    if not expected.posts:
        assert not manage
        return
    (grant,) = manage
    assert grant.action == "execute-api:ManageConnections"
    assert grant.targets == {"WebsocketAPI"}
    ws_stage = template.props("WebsocketAPIStage")["StageName"]
    assert literal_text(grant.resource).endswith(f"/{ws_stage}/*/@connections/*")


def _check_logs_and_tracing(expected: _Expected, grants: list[Grant]) -> None:
    logs = [g for g in grants if g.action.startswith("logs:")]
    assert {g.action for g in logs} == LOG_WRITES
    assert all(g.targets == {expected.log_group} for g in logs)
    xray = {g.action for g in grants if g.action.startswith("xray:")}
    assert xray == (XRAY_WRITES if expected.tracing else set())


def test_function_permissions_are_exactly_what_its_access_entry_and_triggers_need(template):
    for function in template.functions:
        expected = _Expected(template, function)
        grants = template.grants_of_role(template.role_of(function))
        known = ("dynamodb:", "sqs:", "secretsmanager:", "ssm:", "execute-api:", "logs:", "xray:", "ses:")
        assert all(g.action.startswith(known) for g in grants), [g.action for g in grants]
        _check_dynamodb(expected, grants)
        _check_sqs(expected, grants)
        _check_secrets(template, expected, grants)
        _check_connections(template, expected, grants)
        _check_logs_and_tracing(expected, grants)
        _check_email(template, function, grants)


def _check_email(template: Template, function: str, grants: list[Grant]) -> None:
    ses = [g for g in grants if g.action.startswith("ses:")]
    if not access.FUNCTIONS[function].sends_email:
        assert not ses, function
        return
    sender = DEFAULTS[template.stage].email_sender
    assert {g.action for g in ses} == {"ses:SendEmail"}
    identities = {literal_text(g.resource).rsplit(":identity/", 1)[1] for g in ses}
    assert identities == {sender, sender.split("@")[1]}


def test_only_the_email_worker_sends_email_and_only_from_the_stage_sender(template):
    senders = {f for f in template.functions if access.FUNCTIONS[f].sends_email}
    assert senders == {"EmailWorker"}
    sender = DEFAULTS[template.stage].email_sender
    statements = [
        statement
        for policy in template.of_type(POLICY).values()
        if template.role_of("EmailWorker") in references(policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "ses:SendEmail"
    ]
    assert [s["Condition"] for s in statements] == [{"StringEquals": {"ses:FromAddress": sender}}]


def test_only_functions_that_post_to_clients_may_manage_connections(template):
    posting = {f for f in template.functions if access.FUNCTIONS[f].posts_to_connections}
    # APIHandler closes the sockets of a session that ended (sign-out, password change, a stolen token caught).
    assert posting == {"WebsocketMessage", "TicketsChanged", "FanoutWorker", "APIHandler"}


def test_disconnect_handler_touches_nothing_but_the_connections_and_limits_tables(template):
    prefix = DEFAULTS[template.stage].resource_prefix
    connections, _ = template.named(TABLE, "TableName", f"{prefix}{tables.CONNECTIONS.logical}")
    limits, _ = template.named(TABLE, "TableName", f"{prefix}{tables.LIMITS.logical}")
    grants = template.grants_of_role(template.role_of("WebsocketDisconnect"))
    assert {t for g in grants if g.action.startswith("dynamodb:") for t in g.targets} == {connections, limits}
    assert not [g for g in grants if g.action.startswith(("sqs:", "secretsmanager:", "ssm:", "execute-api:"))]


def test_every_table_is_granted_to_a_function_that_uses_it(template):
    granted = {table for grants in access.FUNCTIONS.values() for table in grants.tables}
    assert granted == {spec.logical for spec in tables.TABLES}


def test_the_functions_that_count_rate_limits_may_write_the_limits_table(template):
    # chalicelib.limits.RateLimiter fails open when it cannot write: without the grant, no limit would hold.
    prefix = DEFAULTS[template.stage].resource_prefix
    limits, _ = template.named(TABLE, "TableName", f"{prefix}{tables.LIMITS.logical}")
    writers = {
        function
        for function in template.functions
        if any(
            g.action == "dynamodb:UpdateItem" and limits in g.targets
            for g in template.grants_of_role(template.role_of(function))
        )
    }
    # WebsocketDisconnect gives back the socket's place under its user's cap.
    assert writers == {"APIHandler", "WebsocketConnect", "WebsocketMessage", "WebsocketDisconnect"}
