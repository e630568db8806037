"""Synthesize both stages once per session (CDK synthesis takes tens of seconds) and share the templates."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.settings import STAGES
from tests.infra.cfn import Template

CDK_MISSING = "aws-cdk-lib is not installed: pip install -r requirements-infra.txt"


@dataclass(frozen=True)
class Message:
    """One annotation of the cloud assembly: cdk-nag's findings, aws-cdk-lib's warnings."""

    level: str  # "error" | "warning" | "info"
    path: str  # the construct's path, e.g. /dev/Web/Distribution/Resource
    text: str


@dataclass
class Synthesis:
    templates: dict[str, Template]
    # Each stage's EdgeStack (the web app's CLOUDFRONT web ACL) and the region its artifact targets.
    edge_templates: dict[str, Template]
    edge_regions: dict[str, str]
    # Annotations per stack name (tickets-dev, tickets-dev-edge, ...).
    messages: dict[str, list[Message]]
    # The cloud assembly's folder (cdk-nag writes its reports there).
    outdir: Path
    # The process state around synthesis: Chalice imports app.py and writes os.environ while packaging.
    environ_before: dict[str, str]
    environ_after: dict[str, str]
    modules_before: dict[str, object]
    modules_after: dict[str, object]
    cwd_before: str
    cwd_after: str


def _messages(artifact) -> list[Message]:
    return [Message(level=str(m.level.value).lower(), path=m.id, text=str(m.entry.data)) for m in artifact.messages]


def _app_modules() -> dict[str, object]:
    return {name: module for name, module in sys.modules.items() if name == "app" or name.startswith("chalicelib")}


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory) -> Synthesis:
    pytest.importorskip("aws_cdk", reason=CDK_MISSING)
    from infra.synth import build_app

    environ_before, modules_before, cwd_before = dict(os.environ), _app_modules(), os.getcwd()
    outdir = tmp_path_factory.mktemp("cdk-out")
    app, stacks = build_app(outdir, stages=STAGES, with_dependencies=False, workdir=tmp_path_factory.mktemp("synth"))
    assembly = app.synth()
    templates = {
        stage: Template(
            stage, json.loads(Path(assembly.get_stack_by_name(stack.stack_name).template_full_path).read_text())
        )
        for stage, stack in stacks.items()
    }
    edges = {stage: assembly.get_stack_by_name(f"{stack.stack_name}-edge") for stage, stack in stacks.items()}
    return Synthesis(
        templates=templates,
        edge_templates={
            stage: Template(stage, json.loads(Path(a.template_full_path).read_text())) for stage, a in edges.items()
        },
        edge_regions={stage: artifact.environment.region for stage, artifact in edges.items()},
        messages={artifact.stack_name: _messages(artifact) for artifact in assembly.stacks},
        outdir=Path(outdir),
        environ_before=environ_before,
        environ_after=dict(os.environ),
        modules_before=modules_before,
        modules_after=_app_modules(),
        cwd_before=cwd_before,
        cwd_after=os.getcwd(),
    )


@pytest.fixture(params=STAGES)
def template(request, synthesis) -> Template:
    return synthesis.templates[request.param]


@pytest.fixture(params=STAGES)
def edge_template(request, synthesis) -> Template:
    return synthesis.edge_templates[request.param]
