"""The synthesized stacks hold every table, index, queue and handler the code uses, configured for AWS."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib import tables
from chalicelib.config import load_settings
from chalicelib.observability import METRICS_NAMESPACE, SERVICE
from infra import access
from infra.settings import DEFAULTS
from tests.infra.cfn import ALARM, QUEUE, SECRET, TABLE, Template, literal_text, references

pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed: pip install -r requirements-infra.txt")
pytestmark = pytest.mark.slow

# Which function consumes each queue. A queue whose consumer the app does not define yet is reported, not
# failed, by test_each_queue_has_its_expected_consumer below: update this list with the code.
QUEUE_CONSUMERS = {
    tables.PURCHASES.logical: "PurchaseWorker",
    tables.REFUNDS.logical: "RefundWorker",
    tables.FANOUT.logical: "FanoutWorker",
    tables.EMAILS_QUEUE.logical: "EmailWorker",
}

ROOT = Path(__file__).resolve().parents[2]


def _prefix(template: Template) -> str:
    return DEFAULTS[template.stage].resource_prefix


def _key_schema(hash_key: tables.Key, range_key: tables.Key | None) -> list[dict]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


def _table(template: Template, logical: str) -> dict:
    _, table = template.named(TABLE, "TableName", f"{_prefix(template)}{logical}")
    return table


# --- tables ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", tables.TABLES, ids=lambda spec: spec.logical)
def test_table_from_the_definitions_exists_with_its_keys_and_indexes(template, spec):
    props = _table(template, spec.logical)["Properties"]

    assert props["KeySchema"] == _key_schema(spec.hash_key, spec.range_key)
    types = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
    assert types == {key.name: key.type for key in spec.key_attributes()}
    indexes = {index["IndexName"]: index for index in props.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {index.name for index in spec.indexes}
    for index in spec.indexes:
        actual = indexes[index.name]
        assert actual["KeySchema"] == _key_schema(index.hash_key, index.range_key), index.name
        assert actual["Projection"]["ProjectionType"] == index.projection, index.name
        assert set(actual["Projection"].get("NonKeyAttributes", [])) == set(index.non_key_attributes), index.name


@pytest.mark.parametrize("spec", tables.TABLES, ids=lambda spec: spec.logical)
def test_table_is_on_demand_with_point_in_time_recovery_ttl_and_stream_as_defined(template, spec):
    props = _table(template, spec.logical)["Properties"]

    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in props
    if spec.stream:
        assert props["StreamSpecification"] == {"StreamViewType": spec.stream}
    else:
        assert "StreamSpecification" not in props


def test_every_model_the_code_queries_has_its_table_and_indexes(template):
    from chalicelib.storage.models import MODELS  # pynamodb: the tables and indexes the code really uses

    for logical, model in MODELS.items():
        schema = model._get_schema()
        props = _table(template, logical)["Properties"]
        assert _as_set(props["KeySchema"]) == _as_set(schema["key_schema"]), logical
        declared = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
        for definition in schema["attribute_definitions"]:
            assert declared.get(definition["AttributeName"]) == definition["AttributeType"], (logical, definition)
        indexes = {index["IndexName"]: index for index in props.get("GlobalSecondaryIndexes", [])}
        for index in schema["global_secondary_indexes"]:
            assert index["index_name"] in indexes, f"{logical}: the code queries {index['index_name']}"
            actual = indexes[index["index_name"]]
            assert _as_set(actual["KeySchema"]) == _as_set(index["key_schema"]), index["index_name"]
            assert actual["Projection"]["ProjectionType"] == index["projection"]["ProjectionType"]


def _as_set(key_schema: list[dict]) -> set[tuple[str, str]]:
    return {(key["AttributeName"], key["KeyType"]) for key in key_schema}


def test_tables_are_retained_and_deletion_protected_outside_dev(synthesis):
    for stage, template in synthesis.templates.items():
        keep = DEFAULTS[stage].retain_data
        assert keep == (stage != "dev")
        for name, table in template.of_type(TABLE).items():
            assert table["Properties"].get("DeletionProtectionEnabled", False) is keep, (stage, name)
            assert table.get("DeletionPolicy") == ("Retain" if keep else "Delete"), (stage, name)
            assert table.get("UpdateReplacePolicy") == ("Retain" if keep else "Delete"), (stage, name)


def test_the_stack_has_no_table_the_definitions_do_not_name(template):
    names = {table["Properties"]["TableName"] for table in template.of_type(TABLE).values()}
    assert names == {f"{_prefix(template)}{spec.logical}" for spec in tables.TABLES}


# --- queues ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", tables.QUEUES, ids=lambda spec: spec.logical)
def test_queue_has_a_dead_letter_queue_with_bounded_receives(template, spec):
    _, queue = template.named(QUEUE, "QueueName", spec.name(_prefix(template)))
    dlq_id, dlq = template.named(QUEUE, "QueueName", spec.dlq_name(_prefix(template)))

    redrive = queue["Properties"]["RedrivePolicy"]
    assert references(redrive["deadLetterTargetArn"]) == {dlq_id}
    assert redrive["maxReceiveCount"] == spec.max_receive_count
    assert 1 <= redrive["maxReceiveCount"] <= 10
    assert dlq["Properties"]["MessageRetentionPeriod"] == spec.dlq_retention_seconds
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * spec.consumer_timeout_seconds


def test_every_queue_either_redrives_or_is_a_terminal_queue_that_is_alarmed(template):
    alarmed = set()
    for alarm in template.of_type(ALARM).values():
        if alarm["Properties"].get("Namespace") == "AWS/SQS":
            for dimension in alarm["Properties"]["Dimensions"]:
                alarmed |= references(dimension["Value"])
    for name, queue in template.of_type(QUEUE).items():
        if "RedrivePolicy" not in queue["Properties"]:
            assert name in alarmed, f"{name} has no dead-letter queue and no depth alarm"


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(template):
    sources = template.event_sources("SQS")
    assert sources, "no SQS event source in the template"
    for function, _, props in sources:
        (queue_id,) = references(props["Queue"])
        timeout = template.props(function)["Timeout"]
        visibility = template.props(queue_id)["VisibilityTimeout"]
        assert visibility >= 6 * timeout, f"{function}: timeout {timeout}s, {queue_id} visibility {visibility}s"


def test_every_sqs_event_source_reports_batch_item_failures(template):
    sources = template.event_sources("SQS")
    assert sources
    for function, event_name, props in sources:
        assert event_name == f"{function}SqsEventSource"
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], function


@pytest.mark.parametrize("queue_logical", sorted(QUEUE_CONSUMERS))
def test_each_queue_has_its_expected_consumer(template, queue_logical):
    function = QUEUE_CONSUMERS[queue_logical]
    if function not in template.functions:
        pytest.skip(f"{function} is not defined in app.py yet")
    queue_id, _ = template.named(QUEUE, "QueueName", tables.queue(queue_logical).name(_prefix(template)))
    consumers = [f for f, _, props in template.event_sources("SQS") if references(props["Queue"]) == {queue_id}]
    assert consumers == [function]
    assert template.props(function)["Events"][f"{function}SqsEventSource"]["Properties"]["BatchSize"] <= 10


def test_stream_consumer_reads_this_stages_tickets_stream_with_bounded_retries(template):
    tickets_id, _ = template.named(TABLE, "TableName", f"{_prefix(template)}{tables.TICKETS.logical}")
    sources = template.event_sources("DynamoDB")
    assert [function for function, _, _ in sources] == ["TicketsChanged"]
    for _, _, props in sources:
        assert props["Stream"] == {"Fn::GetAtt": [tickets_id, "StreamArn"]}
        assert 0 <= props["MaximumRetryAttempts"] <= 10
        assert props["BisectBatchOnFunctionError"] is True
        (failure_queue,) = references(props["DestinationConfig"]["OnFailure"]["Destination"])
        assert template.resources[failure_queue]["Type"] == QUEUE


# --- functions -------------------------------------------------------------------------------------


def test_the_app_defines_every_expected_function_and_no_unlisted_one(template):
    defined = set(template.functions)
    missing = set(access.EXPECTED_FUNCTIONS) - defined
    assert not missing, f"expected but not in the template: {sorted(missing)}"
    assert defined <= set(access.FUNCTIONS), f"not in infra/access.py: {sorted(defined - set(access.FUNCTIONS))}"


def test_sweeper_runs_every_minute(template):
    events = template.props("SweepExpired")["Events"]
    assert [event["Properties"]["Schedule"] for event in events.values() if event["Type"] == "Schedule"] == [
        "rate(1 minute)"
    ]


def test_waitroom_ticker_runs_every_minute_and_steps_for_most_of_it(template):
    props = template.props("WaitroomTick")
    schedules = [e["Properties"]["Schedule"] for e in props["Events"].values() if e["Type"] == "Schedule"]
    assert schedules == ["rate(1 minute)"]
    loop = int(props["Environment"]["Variables"]["WAITROOM_TICK_LOOP_SECONDS"])
    assert 30 <= loop < props["Timeout"] <= 60  # the loop ends before the next invocation and before its timeout
    assert props.get("ReservedConcurrentExecutions") == 1


def test_functions_get_the_tables_and_queues_of_their_own_stage_through_the_environment(template):
    prefix = _prefix(template)
    tickets_id, _ = template.named(TABLE, "TableName", f"{prefix}{tables.TICKETS.logical}")
    for name, function in template.functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["STAGE"] == template.stage
        assert env["TABLE_PREFIX"] == prefix and env["QUEUE_PREFIX"] == prefix
        assert env["TICKETS_STREAM_ARN"] == {"Fn::GetAtt": [tickets_id, "StreamArn"]}
        for spec in tables.QUEUES:
            queue_id, _ = template.named(QUEUE, "QueueName", spec.name(prefix))
            assert env[f"{spec.logical.upper()}_QUEUE_ARN"] == {"Fn::GetAtt": [queue_id, "Arn"]}, name
            assert env[f"{spec.logical.upper()}_QUEUE_URL"] == {"Ref": queue_id}, name


def test_functions_reach_the_websocket_management_api_of_their_own_stage(template):
    stage_name = template.props("WebsocketAPIStage")["StageName"]
    for name, function in template.functions.items():
        endpoint = function["Properties"]["Environment"]["Variables"]["WS_MANAGEMENT_ENDPOINT"]
        assert references(endpoint) == {"WebsocketAPI"}, name
        parts = endpoint["Fn::Join"][1]
        assert parts[0] == "https://" and parts[2] == ".execute-api." and parts[-1] == f"/{stage_name}"


def test_secrets_reach_the_functions_as_secret_references_never_as_values(template):
    secret_names = {secret["Properties"]["Name"] for secret in template.of_type(SECRET).values()}
    assert secret_names == {
        f"tickets-{template.stage}/{key}" for key in (access.JWT, access.PAYPAL, access.TICKET_KEYS)
    }
    for secret in template.of_type(SECRET).values():
        assert "SecretString" not in secret["Properties"]  # generated, never a literal in the template
    for name, function in template.functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert not {"JWT_SECRET", "PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET", "TICKET_KEYS"} & set(env), name
        for variable, key in (
            ("JWT_SECRET_PARAMETER", access.JWT),
            ("PAYPAL_SECRET_PARAMETER", access.PAYPAL),
            ("TICKET_KEYS_PARAMETER", access.TICKET_KEYS),
        ):
            assert env[variable] == f"/aws/reference/secretsmanager/tickets-{template.stage}/{key}", name


def test_the_email_queue_retries_a_refused_email_a_few_times_then_dead_letters_it(template):
    prefix = _prefix(template)
    _, queue = template.named(QUEUE, "QueueName", tables.EMAILS_QUEUE.name(prefix))
    dlq_id, _ = template.named(QUEUE, "QueueName", tables.EMAILS_QUEUE.dlq_name(prefix))
    redrive = queue["Properties"]["RedrivePolicy"]
    assert references(redrive["deadLetterTargetArn"]) == {dlq_id}
    assert redrive["maxReceiveCount"] == 5
    # A worker that died holding a claim lets it lapse before the message comes back.
    assert queue["Properties"]["VisibilityTimeout"] >= template.props("EmailWorker")["Timeout"]


def test_functions_send_from_the_stage_sender_and_link_to_the_web_apps_order_page(template):
    sender = DEFAULTS[template.stage].email_sender
    for name, function in template.functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["EMAIL_SENDER"] == sender, name
        assert literal_text(env["ORDER_PAGE_URL"]).endswith("/#/orders/{order_id}"), name


def test_every_function_passes_the_apps_startup_check_with_webhooks_verified_or_refused(template, synthesis):
    # A stage without a webhook id yet (the first deploy) refuses webhooks; it never accepts them unverified.
    webhook_id = DEFAULTS[template.stage].paypal_webhook_id
    for name, function in template.functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        literal = {key: value for key, value in env.items() if isinstance(value, str)}
        settings = load_settings(literal)  # raises ConfigError as the Lambda would at start
        assert settings.paypal_mode != "local", name
        assert (settings.paypal_webhook_id, settings.paypal_webhooks) == (
            (webhook_id, "verify") if webhook_id else (None, "off")
        ), name
    warned = [m for m in synthesis.messages[f"tickets-{template.stage}"] if "paypal_webhook_id" in m.text]
    assert bool(warned) == (not webhook_id)


# --- API Gateway -----------------------------------------------------------------------------------


def test_rest_and_websocket_stages_are_throttled_with_the_stage_defaults(template):
    settings = DEFAULTS[template.stage]
    assert template.props("RestAPI")["MethodSettings"] == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": settings.rest_rate_limit,
            "ThrottlingBurstLimit": settings.rest_burst_limit,
        }
    ]
    assert template.props("WebsocketAPIStage")["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": settings.ws_rate_limit,
        "ThrottlingBurstLimit": settings.ws_burst_limit,
    }


def test_outputs_give_the_rest_and_websocket_urls(template):
    outputs = template.body["Outputs"]
    rest_stage = template.props("RestAPI")["StageName"]
    ws_stage = template.props("WebsocketAPIStage")["StageName"]
    expected = {
        "RestApiUrl": ("https://", "RestAPI", f"/{rest_stage}/"),
        "WebSocketUrl": ("wss://", "WebsocketAPI", f"/{ws_stage}"),
        "PayPalWebhookUrl": ("https://", "RestAPI", f"/{rest_stage}/api/payment/webhook/"),
        "WebSocketManagementEndpoint": ("https://", "WebsocketAPI", f"/{ws_stage}"),
    }
    for output, (scheme, api, suffix) in expected.items():
        value = outputs[output]["Value"]
        assert references(value) == {api}, output
        text = literal_text(value)
        assert text.startswith(scheme) and ".execute-api." in text and text.endswith(suffix), (output, text)


# --- alarms ----------------------------------------------------------------------------------------


def _alarms(template: Template) -> list[dict]:
    return [alarm["Properties"] for alarm in template.of_type(ALARM).values()]


def test_every_dead_letter_queue_has_a_depth_alarm(template):
    for spec in tables.QUEUES:
        dlq_id, _ = template.named(QUEUE, "QueueName", spec.dlq_name(_prefix(template)))
        matching = [
            a
            for a in _alarms(template)
            if a["Namespace"] == "AWS/SQS"
            and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and references(a["Dimensions"]) == {dlq_id}
        ]
        assert len(matching) == 1, spec.dlq_logical
        assert matching[0]["Threshold"] == 1
        assert matching[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_alarm_on_its_errors_and_throttles(template, metric):
    for name in template.functions:
        matching = [
            a
            for a in _alarms(template)
            if a["Namespace"] == "AWS/Lambda"
            and a["MetricName"] == metric
            and a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": name}}]
        ]
        assert len(matching) == 1, f"{name}: {metric}"


@pytest.mark.parametrize("metric", ["DisputesOpened", "PaymentsReversed"])
def test_staff_are_alarmed_on_the_first_dispute_or_chargeback(template, metric):
    # The metric names the app emits (chalicelib/services/chargebacks.py), in its namespace and dimension.
    matching = [
        a
        for a in _alarms(template)
        if (a["Namespace"], a["MetricName"]) == (METRICS_NAMESPACE, metric)
        and a["Dimensions"] == [{"Name": "service", "Value": SERVICE}]
    ]
    assert len(matching) == 1
    assert (matching[0]["Threshold"], matching[0]["Statistic"]) == (1, "Sum")
    source = (ROOT / "chalicelib" / "services" / "chargebacks.py").read_text()
    assert f'name="{metric}"' in source


def test_every_alarm_notifies_this_stages_topic(template):
    (topic_id,) = template.of_type("AWS::SNS::Topic")
    for alarm in _alarms(template):
        assert references(alarm["AlarmActions"]) == {topic_id}, alarm["AlarmName"]
        assert alarm["AlarmName"].startswith(_prefix(template))
