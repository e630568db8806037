"""cdk-nag's AwsSolutions rules pass on every stack: errors fail, accepted findings carry their reasons."""

from __future__ import annotations

import csv
import warnings

import pytest

from tests.infra.cfn import Template

pytestmark = pytest.mark.slow

pytest.importorskip("cdk_nag", reason="cdk-nag is not installed: pip install -r requirements-infra.txt")


def _stacks(synthesis) -> dict[str, Template]:
    stacks = {f"tickets-{stage}": template for stage, template in synthesis.templates.items()}
    stacks |= {f"tickets-{stage}-edge": template for stage, template in synthesis.edge_templates.items()}
    return stacks


def _report(synthesis, stack_name: str) -> list[dict[str, str]]:
    (path,) = synthesis.outdir.glob(f"AwsSolutions-*{stack_name}-NagReport.csv")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_stack_was_checked_and_no_finding_is_an_unacknowledged_error(synthesis):
    for stack_name in _stacks(synthesis):
        rows = _report(synthesis, stack_name)  # cdk-nag writes one report per stack it checked
        failing = [row for row in rows if row["Compliance"] == "Non-Compliant" and row["Rule Level"] == "Error"]
        assert not failing, [(row["Rule ID"], row["Resource ID"]) for row in failing]
    assert _report(synthesis, "tickets-prod"), "cdk-nag checked no rule on tickets-prod"


def test_synthesis_reports_no_error_at_all(synthesis):
    for stack_name, messages in synthesis.messages.items():
        assert not [m for m in messages if m.level == "error"], stack_name


def test_warnings_are_reported(synthesis):
    found = [
        f"{stack_name} {m.path}: {m.text.splitlines()[0][:160]}"
        for stack_name, messages in synthesis.messages.items()
        for m in messages
        if m.level == "warning"
    ]
    if found:  # listed in pytest's warnings summary; a warning is a decision to make, not a failure
        warnings.warn("cdk synthesis warnings:\n" + "\n".join(sorted(set(found))), UserWarning, stacklevel=1)


def test_every_acknowledgement_is_on_one_resource_with_a_reason(synthesis):
    for stack_name, template in _stacks(synthesis).items():
        assert "cdk_nag" not in template.body.get("Metadata", {}), f"{stack_name}: a stack-wide acknowledgement"
        for name, resource in template.resources.items():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                assert rule["id"].startswith("AwsSolutions-"), (name, rule["id"])
                assert len(rule["reason"]) >= 60, (name, rule["id"], rule["reason"])
                if rule["id"] == "AwsSolutions-IAM5":
                    assert rule.get("applies_to"), f"{name}: IAM5 acknowledged for every finding at once"


def test_what_is_acknowledged_is_acknowledged_in_every_stage_alike(synthesis):
    def acknowledged(template: Template) -> set[tuple[str, str]]:
        return {
            (resource["Type"], rule["id"])
            for resource in template.resources.values()
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        }

    dev, prod = (acknowledged(synthesis.templates[stage]) for stage in ("dev", "prod"))
    assert dev == prod
