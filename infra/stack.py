"""One stage of the service: its tables, queues, secrets, the Chalice app with one role per function, alarms,
the REST API's web ACL (infra/waf.py) and the web app (S3 + CloudFront, infra/web.py).

Every table and queue is built from chalicelib.tables, the definitions the local stack and the tests use.
Every physical name starts with `tickets-<stage>-`, so TABLE_PREFIX / QUEUE_PREFIX point the code at them and
two stages can share an account without sharing a resource.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from chalice.cdk import Chalice
from constructs import Construct

from chalicelib import tables
from chalicelib.observability import METRICS_NAMESPACE, SERVICE
from infra import access
from infra.gateway_responses import add_gateway_responses
from infra.settings import StageSettings
from infra.waf import RestApiFirewall
from infra.web import WebSite, paypal_redirect_urls

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
# Secrets Manager secrets are readable through SSM GetParameter under this prefix, which is how the code reads
# its *_SECRET_PARAMETER settings; CloudFormation cannot create SSM SecureString parameters itself.
SSM_SECRETS_PREFIX = "/aws/reference/secretsmanager/"
# Where a stage's Lambda code imports from: Chalice imports app.py once per process and caches it.
_APP_MODULES = ("app", "chalicelib")


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


class UnknownFunctionError(RuntimeError):
    """The Chalice app defines a function that infra/access.py does not list."""


def camel(logical: str) -> str:
    return "".join(part.capitalize() for part in logical.replace("_", "-").split("-"))


@contextlib.contextmanager
def fresh_app_import(region: str = "us-east-1") -> Iterator[None]:
    """Run a Chalice construct with its own `app` import and leave the process as it was.

    Chalice imports `app` once per process (importlib.import_module) and writes the stage's environment
    variables into os.environ before that import; without this, the second stage silently reuses the first
    stage's module, its queue and stream ARNs included. No bytecode is written (the staged project keeps its
    precompiled files), and the region only fills a missing value for Chalice's packager.
    """
    loaded = [name for name in sys.modules if name in _APP_MODULES or name.startswith("chalicelib.")]
    saved_modules = {name: sys.modules.pop(name) for name in loaded}
    saved_environ = dict(os.environ)
    saved_path = list(sys.path)
    saved_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n in _APP_MODULES or n.startswith("chalicelib.")]:
            del sys.modules[name]
        sys.modules.update(saved_modules)
        os.environ.clear()
        os.environ.update(saved_environ)
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_bytecode


class TicketsStack(cdk.Stack):
    """The whole service for one stage. The construct id is the Chalice stage name (`dev`, `prod`)."""

    def __init__(self, scope: Construct, settings: StageSettings, project_dir: Path, **kwargs) -> None:
        super().__init__(
            scope,
            settings.name,
            stack_name=settings.stack_name,
            description=f"tickets service, stage {settings.name}: API, WebSocket API, tables, queues, alarms",
            **kwargs,
        )
        self.settings = settings
        self.prefix = settings.resource_prefix
        self.tables = {spec.logical: self._table(spec) for spec in tables.TABLES}
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        for spec in tables.QUEUES:
            self._queue(spec)
        self.failure_queues: dict[str, sqs.Queue] = {}
        self.secrets = self._secrets()
        self.alarm_topic = self._alarm_topic()
        self.roles: dict[str, iam.Role] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        # Before the Chalice app: its functions get the site's URL (PAYMENT_RETURN_URL); the files come later.
        self.web = WebSite(
            self,
            "Web",
            stack_name=settings.stack_name,
            log_retention=_RETENTION[settings.log_retention_days],
            web_acl_arn=settings.web_acl_arn or None,
        )
        # Chalice needs one role ARN up front; every function then gets its own role (see _wire_function).
        default_role = self._role("APIHandler")
        with fresh_app_import():
            self.chalice = Chalice(
                self,
                "Chalice",
                source_dir=str(project_dir),
                stage_config={
                    "manage_iam_role": False,
                    "iam_role_arn": default_role.role_arn,
                    "autogen_policy": False,
                    "environment_variables": self._environment(),
                },
            )
        self.sam = self._read_sam_template()
        self.rest_stage = self.sam["Resources"]["RestAPI"]["Properties"]["StageName"]
        self.ws_stage = self.sam["Resources"]["WebsocketAPIStage"]["Properties"]["StageName"]
        self.functions = {
            name: resource
            for name, resource in self.sam["Resources"].items()
            if resource["Type"] == SERVERLESS_FUNCTION
        }
        for name, resource in self.functions.items():
            self._wire_function(name, resource)
        self._throttle_apis()
        self.firewall = self._protect_rest_api()
        # API Gateway's own errors (unknown path, throttling, ...) in the contract's shape, with CORS.
        add_gateway_responses(self.chalice.get_resource("RestAPI"))
        self.web.publish(
            api_base=cdk.Fn.join("", [self._rest_url(), "api"]), ws_url=self._ws_url(), api_origins=self._api_origins()
        )
        for logical, dlq in {**self.dead_letter_queues, **self.failure_queues}.items():
            self._queue_depth_alarm(logical, dlq)
        self._money_alarms()
        self._outputs()

    # --- data -------------------------------------------------------------------------------------

    def _attribute(self, key: tables.Key) -> dynamodb.Attribute:
        kind = dynamodb.AttributeType.NUMBER if key.type == "N" else dynamodb.AttributeType.STRING
        return dynamodb.Attribute(name=key.name, type=kind)

    def _table(self, spec: tables.TableSpec) -> dynamodb.Table:
        retain = self.settings.retain_data
        table = dynamodb.Table(
            self,
            f"{camel(spec.logical)}Table",
            table_name=f"{self.prefix}{spec.logical}",
            partition_key=self._attribute(spec.hash_key),
            sort_key=self._attribute(spec.range_key) if spec.range_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=retain,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
            time_to_live_attribute=spec.ttl_attribute,
            stream=dynamodb.StreamViewType[spec.stream] if spec.stream else None,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=self._attribute(index.hash_key),
                sort_key=self._attribute(index.range_key) if index.range_key else None,
                projection_type=dynamodb.ProjectionType[index.projection],
                non_key_attributes=list(index.non_key_attributes) if index.projection == "INCLUDE" else None,
            )
        return table

    def _queue(self, spec: tables.QueueSpec) -> None:
        dlq = sqs.Queue(
            self,
            f"{camel(spec.dlq_logical)}Queue",
            queue_name=spec.dlq_name(self.prefix),
            fifo=spec.fifo or None,
            retention_period=cdk.Duration.seconds(spec.dlq_retention_seconds),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        queue = sqs.Queue(
            self,
            f"{camel(spec.logical)}Queue",
            queue_name=spec.name(self.prefix),
            fifo=spec.fifo or None,
            visibility_timeout=cdk.Duration.seconds(spec.visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queues[spec.logical] = queue
        self.dead_letter_queues[spec.dlq_logical] = dlq

    def _failure_queue(self, function_name: str) -> sqs.Queue:
        """Where a stream event source puts the metadata of a batch it gave up on (alarmed like a DLQ)."""
        logical = f"{function_name.lower()}-stream-failures"
        queue = sqs.Queue(
            self,
            f"{function_name}StreamFailuresQueue",
            queue_name=f"{self.prefix}{logical}",
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.failure_queues[logical] = queue
        return queue

    def _secrets(self) -> dict[str, secretsmanager.Secret]:
        jwt = secretsmanager.Secret(
            self,
            "JwtSecret",
            secret_name=f"{self.settings.stack_name}/jwt",
            description="HS256 signing key of access and refresh tokens (generated; rotate by setting a new value)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
        )
        # A placeholder the operator replaces with the PayPal app's credentials (see infra/README.md);
        # generated, so no credential-looking literal ever sits in the template.
        paypal = secretsmanager.Secret(
            self,
            "PayPalSecret",
            secret_name=f"{self.settings.stack_name}/paypal",
            description='PayPal REST app credentials as {"client_id": ..., "client_secret": ...}',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"client_id": "REPLACE_ME"}),
                generate_string_key="client_secret",
                exclude_punctuation=True,
            ),
        )
        # E-ticket signing keys: made by `python -m tools.ticket_keys` and stored here by hand (infra/README.md,
        # Secrets); empty until then (tickets answer 503 tickets_unavailable without a key).
        ticket_keys = secretsmanager.Secret(
            self,
            "TicketKeysSecret",
            secret_name=f"{self.settings.stack_name}/{access.TICKET_KEYS}",
            description='Ed25519 e-ticket keys as {"current": kid, "keys": {kid: base64url raw private key}}',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"current": "", "keys": {}}),
                generate_string_key="unused",
                exclude_punctuation=True,
            ),
        )
        return {access.JWT: jwt, access.PAYPAL: paypal, access.TICKET_KEYS: ticket_keys}

    def _secret_parameter(self, key: str) -> str:
        return f"{SSM_SECRETS_PREFIX}{self.settings.stack_name}/{key}"

    # --- the Chalice app --------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        settings = self.settings
        env = {
            "STAGE": settings.name,
            "TABLE_PREFIX": self.prefix,
            "QUEUE_PREFIX": self.prefix,
            "JWT_SECRET_PARAMETER": self._secret_parameter(access.JWT),
            "PAYPAL_MODE": settings.paypal_mode,
            "PAYPAL_SECRET_PARAMETER": self._secret_parameter(access.PAYPAL),
            "TICKET_KEYS_PARAMETER": self._secret_parameter(access.TICKET_KEYS),
            # Where PayPal sends buyers back: the frontend_url setting, else this stack's own web app.
            **paypal_redirect_urls(settings.frontend_url, self.web.url),
        }
        if settings.paypal_webhook_id:
            env["PAYPAL_WEBHOOK_ID"] = settings.paypal_webhook_id
        else:
            # PayPal issues the id only once the webhook URL (this stack's output) is registered: until the
            # second deploy sets it, deliveries are refused with a 503 (PayPal redelivers them for three days)
            # rather than acted on unverified. The app itself refuses to start without either.
            env["PAYPAL_WEBHOOKS"] = "off"
            cdk.Annotations.of(self).add_warning_v2(
                "tickets:paypal-webhooks-off",
                "paypal_webhook_id is not set: PayPal webhooks are refused until it is (README, Deploy).",
            )
        env["EMAIL_SENDER"] = settings.email_sender
        # The buyer's order page in the web app, where the tickets are (the emails link there).
        env["ORDER_PAGE_URL"] = f"{(settings.frontend_url or self.web.url).rstrip('/')}/#/orders/{{order_id}}"
        for spec in tables.TABLES:
            if spec.stream:
                env[f"{spec.logical.upper().replace('-', '_')}_STREAM_ARN"] = self.tables[spec.logical].table_stream_arn
        for spec in tables.QUEUES:
            queue = self.queues[spec.logical]
            env[f"{spec.logical.upper()}_QUEUE_ARN"] = queue.queue_arn
            env[f"{spec.logical.upper()}_QUEUE_URL"] = queue.queue_url
        return env

    def _read_sam_template(self) -> dict:
        # The template Chalice generated for this stage, with CDK tokens still as strings: the only place that
        # says which functions exist and what triggers them. (chalice.cdk keeps its folder in a private field.)
        path = Path(self.chalice._sam_package_dir) / "sam.json"  # noqa: SLF001
        return json.loads(path.read_text())

    def _role(self, function: str) -> iam.Role:
        if function not in self.roles:
            self.roles[function] = iam.Role(
                self,
                f"{function}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"{self.settings.stack_name} {function}: {access.FUNCTIONS[function].purpose}"[:1000],
            )
        return self.roles[function]

    def _wire_function(self, name: str, resource: dict) -> None:
        grants = access.FUNCTIONS.get(name)
        if grants is None:
            raise UnknownFunctionError(
                f"The Chalice app defines {name}, which infra/access.py does not list: add what it may touch."
            )
        function = self.chalice.get_resource(name)
        role = self._role(name)
        physical_name = f"{self.prefix}{name}"
        function.add_property_override("FunctionName", physical_name)
        function.add_property_override("Role", role.role_arn)
        self._grant_logging(name, physical_name, role)
        for logical, level in grants.tables.items():
            table = self.tables[logical]
            (table.grant_read_write_data if level == access.WRITE else table.grant_read_data)(role)
        for logical in grants.sends_to:
            self.queues[logical].grant_send_messages(role)
        for key in grants.secrets:
            self._grant_secret(key, role)
        self._grant_services(grants, role)
        for event_name, event in (resource["Properties"].get("Events") or {}).items():
            self._wire_event_source(name, event_name, event, role)
        if resource["Properties"].get("Tracing") == "Active":
            role.add_to_policy(
                iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])
            )
        function.add_property_override("Environment.Variables.WS_MANAGEMENT_ENDPOINT", self._management_endpoint())
        reserved = self.settings.reserved_concurrency(name)
        if reserved:  # 0 would stop the function: no reservation means no property
            function.add_property_override("ReservedConcurrentExecutions", reserved)
        # The role ARN alone orders the function after the role, not after the grants in its policy: an event
        # source mapping created in between would fail its permission check.
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            function.add_resource_dependency(policy.node.default_child)
        self._function_alarms(name, function)

    def _grant_logging(self, name: str, physical_name: str, role: iam.Role) -> None:
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            log_group_name=f"/aws/lambda/{physical_name}",
            retention=_RETENTION[self.settings.log_retention_days],
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.log_groups[name] = log_group
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            )
        )

    def _grant_services(self, grants: access.FunctionAccess, role: iam.Role) -> None:
        if grants.sends_email:
            self._grant_send_email(role)
        if grants.posts_to_connections:
            role.add_to_policy(
                iam.PolicyStatement(actions=["execute-api:ManageConnections"], resources=[self._connections_arn()])
            )

    def _grant_send_email(self, role: iam.Role) -> None:
        """SendEmail from the stage's sender only: its address identity or its domain's, whichever SES verified,
        and From must be that address."""
        sender = self.settings.email_sender
        identities = [
            f"arn:{self.partition}:ses:{self.region}:{self.account}:identity/{name}"
            for name in (sender, sender.rsplit("@", 1)[1])
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail"],
                resources=identities,
                conditions={"StringEquals": {"ses:FromAddress": sender}},
            )
        )

    def _grant_secret(self, key: str, role: iam.Role) -> None:
        self.secrets[key].grant_read(role)
        parameter = self._secret_parameter(key)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[f"arn:{self.partition}:ssm:{self.region}:{self.account}:parameter{parameter}"],
            )
        )

    def _wire_event_source(self, name: str, event_name: str, event: dict, role: iam.Role) -> None:
        kind, properties = event["Type"], event["Properties"]
        function = self.chalice.get_resource(name)
        if kind == "SQS":
            spec, queue = self._queue_for_arn(properties["Queue"], name)
            queue.grant_consume_messages(role)
            # Without it Lambda takes a batchItemFailures answer for success and deletes the failed messages.
            function.add_property_override(
                f"Events.{event_name}.Properties.FunctionResponseTypes", ["ReportBatchItemFailures"]
            )
            # The queue's visibility timeout (6x) is derived from this same number.
            function.add_property_override("Timeout", spec.consumer_timeout_seconds)
            reserved = self.settings.reserved_concurrency(name)
            if reserved:
                # Lambda's pollers never invoke past the reservation. Past it they would be throttled, and a
                # throttled batch returns after its visibility timeout, its receives counted towards the DLQ.
                function.add_property_override(
                    f"Events.{event_name}.Properties.ScalingConfig", {"MaximumConcurrency": reserved}
                )
        elif kind == "DynamoDB":
            table = self._table_for_stream_arn(properties["Stream"], name)
            table.grant_stream_read(role)
            failures = self._failure_queue(name)
            failures.grant_send_messages(role)
            for key, value in {
                "BisectBatchOnFunctionError": True,
                "MaximumRetryAttempts": self.settings.stream_max_retries,
                "MaximumRecordAgeInSeconds": self.settings.stream_max_record_age_seconds,
                "DestinationConfig": {"OnFailure": {"Destination": failures.queue_arn}},
            }.items():
                function.add_property_override(f"Events.{event_name}.Properties.{key}", value)
            self._iterator_age_alarm(name, function)
        elif kind != "Schedule":
            raise UnknownFunctionError(f"{name}: event source {event_name} of type {kind} is not wired by infra")

    def _queue_for_arn(self, arn: str, function: str) -> tuple[tables.QueueSpec, sqs.Queue]:
        for spec in tables.QUEUES:
            if self.queues[spec.logical].queue_arn == arn:
                return spec, self.queues[spec.logical]
        raise UnknownFunctionError(
            f"{function} consumes a queue that is not one of this stage's queues ({arn}): "
            "its decorator must take the ARN from configuration"
        )

    def _table_for_stream_arn(self, arn: str, function: str) -> dynamodb.Table:
        for spec in tables.TABLES:
            if spec.stream and self.tables[spec.logical].table_stream_arn == arn:
                return self.tables[spec.logical]
        raise UnknownFunctionError(
            f"{function} reads a stream that is not one of this stage's table streams ({arn}): "
            "its decorator must take the ARN from configuration"
        )

    def _websocket_api_id(self) -> str:
        return self.chalice.get_resource("WebsocketAPI").ref

    def _management_endpoint(self) -> str:
        return cdk.Fn.join(
            "",
            [
                "https://",
                self._websocket_api_id(),
                ".execute-api.",
                self.region,
                ".",
                self.url_suffix,
                "/",
                self.ws_stage,
            ],
        )

    def _connections_arn(self) -> str:
        return cdk.Fn.join(
            "",
            [
                f"arn:{self.partition}:execute-api:{self.region}:{self.account}:",
                self._websocket_api_id(),
                f"/{self.ws_stage}/*/@connections/*",
            ],
        )

    def _throttle_apis(self) -> None:
        settings = self.settings
        self.chalice.get_resource("RestAPI").add_property_override(
            "MethodSettings",
            [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "ThrottlingRateLimit": settings.rest_rate_limit,
                    "ThrottlingBurstLimit": settings.rest_burst_limit,
                }
            ],
        )
        self.chalice.get_resource("WebsocketAPIStage").add_property_override(
            "DefaultRouteSettings",
            {"ThrottlingRateLimit": settings.ws_rate_limit, "ThrottlingBurstLimit": settings.ws_burst_limit},
        )

    def _protect_rest_api(self) -> RestApiFirewall:
        """The REST API answers at its stage only, behind the stage's web ACL."""
        rest_api = self.chalice.get_resource("RestAPI")
        # Without an OpenApiVersion SAM also deploys the API to a stage named "Stage": a second URL for every route
        # that neither this stage's throttling nor its web ACL covers. "2.0" is what Chalice's Swagger body is.
        rest_api.add_property_override("OpenApiVersion", "2.0")
        return RestApiFirewall(
            self,
            "RestApiFirewall",
            settings=self.settings,
            stage=self.rest_stage,
            rest_api_id=rest_api.ref,
            stage_ref=cdk.Fn.ref("RestAPI.Stage"),
        )

    def _api_origins(self) -> list[str]:
        """The origins the web app connects to (its CSP connect-src): the REST API and the WebSocket API.

        The REST API's own host cannot be named: the functions name the distribution (their PayPal return URL),
        the API names the functions, so the distribution's headers naming the API would close a cycle. Any
        execute-api host of this region is allowed instead; the WebSocket API names no function, so it is exact.
        """
        hosts = f".execute-api.{self.region}.{self.url_suffix}"
        return [f"https://*{hosts}", cdk.Fn.join("", ["wss://", self._websocket_api_id(), hosts])]

    # --- alarms and outputs -----------------------------------------------------------------------

    def _alarm_topic(self) -> sns.Topic:
        topic = sns.Topic(self, "AlarmTopic", display_name=f"{self.settings.stack_name} alarms", enforce_ssl=True)
        if self.settings.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(self.settings.alarm_email))
        return topic

    def _alarm(
        self, construct_id: str, name: str, description: str, metric: cloudwatch.IMetric, threshold: float
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{self.prefix}{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alarm_topic))

    def _queue_depth_alarm(self, logical: str, queue: sqs.Queue) -> None:
        self._alarm(
            f"{camel(logical)}DepthAlarm",
            f"{logical}-not-empty",
            f"Messages in {queue.node.id}: messages that failed every retry (partial batch failures included).",
            queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            1,
        )

    def _lambda_metric(self, metric_name: str, function: cdk.CfnResource, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name=metric_name,
            dimensions_map={"FunctionName": function.ref},
            statistic=statistic,
            period=cdk.Duration.seconds(self.settings.alarm_period_seconds),
        )

    def _function_alarms(self, name: str, function: cdk.CfnResource) -> None:
        self._alarm(
            f"{name}ErrorsAlarm",
            f"{name}-errors",
            f"{name} invocations that failed (partial batch failures show in the DLQ alarms instead).",
            self._lambda_metric("Errors", function, cloudwatch.Stats.SUM),
            self.settings.errors_threshold,
        )
        self._alarm(
            f"{name}ThrottlesAlarm",
            f"{name}-throttles",
            f"{name} invocations refused for lack of concurrency.",
            self._lambda_metric("Throttles", function, cloudwatch.Stats.SUM),
            self.settings.throttles_threshold,
        )

    def _money_alarms(self) -> None:
        """Staff hear of every dispute and chargeback at once (the app's metrics, chalicelib/services/chargebacks.py);
        the orders are listed at GET /api/staff/orders/?attention=disputed|reversed."""
        for metric_name, name, description in (
            ("DisputesOpened", "disputes-opened", "A buyer opened a PayPal dispute: answer it in PayPal."),
            ("PaymentsReversed", "payments-reversed", "PayPal took a payment back: its tickets are void."),
        ):
            metric = cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=metric_name,
                dimensions_map={"service": SERVICE},
                statistic=cloudwatch.Stats.SUM,
                period=cdk.Duration.seconds(self.settings.alarm_period_seconds),
            )
            self._alarm(f"{metric_name}Alarm", name, description, metric, 1)

    def _iterator_age_alarm(self, name: str, function: cdk.CfnResource) -> None:
        self._alarm(
            f"{name}IteratorAgeAlarm",
            f"{name}-iterator-age",
            f"{name} is behind its stream: room broadcasts are late.",
            self._lambda_metric("IteratorAge", function, cloudwatch.Stats.MAXIMUM),
            self.settings.stream_iterator_age_ms,
        )

    def _rest_url(self) -> str:
        rest_id = self.chalice.get_resource("RestAPI").ref
        return cdk.Fn.join(
            "", ["https://", rest_id, ".execute-api.", self.region, ".", self.url_suffix, f"/{self.rest_stage}/"]
        )

    def _ws_url(self) -> str:
        return cdk.Fn.join(
            "",
            [
                "wss://",
                self._websocket_api_id(),
                ".execute-api.",
                self.region,
                ".",
                self.url_suffix,
                f"/{self.ws_stage}",
            ],
        )

    def _outputs(self) -> None:
        rest_url, ws_url = self._rest_url(), self._ws_url()
        cdk.CfnOutput(self, "RestApiUrl", value=rest_url, description="REST base URL (paths start with api/)")
        cdk.CfnOutput(
            self, "WebSocketUrl", value=ws_url, description="WebSocket URL (?event_id=&date=&theater=&token=)"
        )
        cdk.CfnOutput(
            self,
            "PayPalWebhookUrl",
            value=cdk.Fn.join("", [rest_url, "api/payment/webhook/"]),
            description="Register this URL as the PayPal app's webhook",
        )
        cdk.CfnOutput(self, "WebSocketManagementEndpoint", value=self._management_endpoint())
        cdk.CfnOutput(
            self,
            "PayPalSecretName",
            value=f"{self.settings.stack_name}/paypal",
            description="Put the PayPal client_id and client_secret here",
        )
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        cdk.CfnOutput(
            self,
            "WebUrl",
            value=self.web.url,
            description="The web app (CloudFront); its config.json points at RestApiUrl and WebSocketUrl",
        )
        cdk.CfnOutput(self, "RestApiWebAclArn", value=self.firewall.web_acl.attr_arn)
        cdk.CfnOutput(self, "WebBucketName", value=self.web.bucket.bucket_name)
        cdk.CfnOutput(self, "WebDistributionId", value=self.web.distribution.distribution_id)
