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


@dataclass
class Synthesis:
    templates: dict[str, Template]
    # The process state around synthesis: Chalice imports app.py and writes os.environ while packaging.
    environ_before: dict[str, str]
    environ_after: dict[str, str]
    modules_before: dict[str, object]
    modules_after: dict[str, object]
    cwd_before: str
    cwd_after: str


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
    return Synthesis(
        templates=templates,
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
