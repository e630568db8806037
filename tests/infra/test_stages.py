"""dev and prod share nothing by accident, and each one is built from its own Chalice stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra.settings import DEFAULTS, STAGES
from tests.infra.cfn import ALARM, FUNCTION, LOG_GROUP, QUEUE, SECRET, TABLE, Template, references

pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed: pip install -r requirements-infra.txt")
pytestmark = pytest.mark.slow

CHALICE_CONFIG = json.loads((Path(__file__).resolve().parents[2] / ".chalice" / "config.json").read_text())
NAMED = {
    TABLE: "TableName",
    QUEUE: "QueueName",
    FUNCTION: "FunctionName",
    LOG_GROUP: "LogGroupName",
    SECRET: "Name",
    ALARM: "AlarmName",
}


def _text(template: Template) -> str:
    return json.dumps(template.body)


def test_no_stack_imports_or_exports_values(template):
    assert "Fn::ImportValue" not in _text(template)
    assert all("Export" not in output for output in template.body.get("Outputs", {}).values())


def test_every_reference_resolves_inside_its_own_template(template):
    local = set(template.resources) | set(template.body.get("Parameters", {}))
    assert references(template.resources) <= local
    assert references(template.body.get("Outputs", {})) <= local


def test_every_physical_name_belongs_to_its_stage(template):
    stage = template.stage
    prefixes = (f"tickets-{stage}-", f"/aws/lambda/tickets-{stage}-", f"tickets-{stage}/")
    for kind, prop in NAMED.items():
        for name, resource in template.of_type(kind).items():
            assert resource["Properties"][prop].startswith(prefixes), (name, resource["Properties"][prop])


def test_no_stage_mentions_another_stage_or_a_placeholder_arn(synthesis):
    for stage, template in synthesis.templates.items():
        text = _text(template)
        for other in set(STAGES) - {stage}:
            assert f"tickets-{other}" not in text, (stage, other)
        # config.py's defaults: a decorator that read them instead of the stage's ARNs would show here.
        assert "placeholder" not in text and "123456789012" not in text, stage


def test_each_stack_packages_its_own_chalice_stage_from_the_config(template):
    stage_config = CHALICE_CONFIG["stages"][template.stage]
    assert template.props("RestAPI")["StageName"] == stage_config["api_gateway_stage"]
    for name, function in template.functions.items():
        props = function["Properties"]
        assert f":stage={template.stage}:" in props["Tags"]["aws-chalice"], name
        own = stage_config.get("lambda_functions", {}).get(chalice_name(name), {})
        assert props["MemorySize"] == own.get("lambda_memory_size", stage_config["lambda_memory_size"]), name
        assert props["Tracing"] == ("Active" if stage_config.get("xray") else "PassThrough"), name
    assert (
        template.props("SweepExpired")["Timeout"] == stage_config["lambda_functions"]["sweep_expired"]["lambda_timeout"]
    )


def test_prod_posting_functions_get_a_whole_vcpu(synthesis):
    # A room's fan-out is CPU-bound at ~0.5 ms per post (docs/broadcasts.md): Lambda gives one vCPU at 1,769 MB,
    # and more gains a single Python process nothing.
    template = synthesis.templates["prod"]
    for name in ("TicketsChanged", "FanoutWorker"):
        assert template.props(name)["MemorySize"] == 1769, name


def chalice_name(function: str) -> str:
    """TicketsChanged -> tickets_changed: the key of .chalice/config.json's lambda_functions."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", function).lower()


def test_stack_names_differ_per_stage():
    assert len({DEFAULTS[stage].stack_name for stage in STAGES}) == len(STAGES)


def test_synthesis_leaves_the_process_as_it_found_it(synthesis):
    # Chalice writes the stage's variables into os.environ and imports app.py while packaging.
    assert synthesis.environ_after == synthesis.environ_before
    assert synthesis.cwd_after == synthesis.cwd_before
    assert synthesis.modules_after.keys() == synthesis.modules_before.keys()
    assert all(synthesis.modules_after[name] is module for name, module in synthesis.modules_before.items())
