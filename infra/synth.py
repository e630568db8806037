"""Build the CDK app for the stages: stage the Lambda project, then per stage its TicketsStack and its EdgeStack
(the web app's web ACL, us-east-1), all checked by cdk-nag's AwsSolutions rules (infra/nag.py).

Synthesis imports app.py (no AWS call may happen at import) and needs no AWS account. Chalice writes
`chalice.out/<uuid>/` into the working folder, so construction runs from a scratch folder under build/.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import aws_cdk as cdk

from infra import bundle, nag
from infra.settings import STAGES, stage_settings
from infra.stack import TicketsStack
from infra.waf import EdgeStack


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def selected_stages(app: cdk.App) -> tuple[str, ...]:
    """`-c stages=dev` synthesizes only dev; the default is every stage."""
    raw = app.node.try_get_context("stages")
    if not raw:
        return STAGES
    names = tuple(name.strip() for name in str(raw).split(",") if name.strip())
    unknown = sorted(set(names) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    return names


def add_stages(
    app: cdk.App,
    *,
    stages: Iterable[str] | None = None,
    with_dependencies: bool = True,
    workdir: Path = bundle.BUILD_DIR / "synth",
) -> dict[str, TicketsStack]:
    """Add the stacks of each stage to `app`; returns the stages' TicketsStacks (their EdgeStacks are
    `<stage>-edge`). Without dependencies the package holds the app code only (tests)."""
    workdir = workdir.resolve()
    vendor = bundle.build_vendor() if with_dependencies else None
    project = bundle.stage_project(workdir / "project", vendor)
    stacks: dict[str, TicketsStack] = {}
    with working_directory(workdir):
        for name in stages or selected_stages(app):
            settings = stage_settings(name, app.node.try_get_context)
            stacks[name] = TicketsStack(app, settings, project)
            nag.acknowledge_stage(stacks[name])
            EdgeStack(app, settings)
    return stacks


def build_app(outdir: Path | None = None, **kwargs) -> tuple[cdk.App, dict[str, TicketsStack]]:
    """A new App (writing to `outdir`, else where the CDK CLI says) with the stages added."""
    # Merged IAM statements: APIHandler's one statement per table and action group would outgrow a role's
    # inline policy size, and aws-cdk-lib would spill it into a managed "overflow" policy.
    props: dict = {"analytics_reporting": False, "context": {"@aws-cdk/aws-iam:minimizePolicies": True}}
    if outdir is not None:
        props["outdir"] = str(Path(outdir).resolve())
    elif os.environ.get("CDK_OUTDIR"):
        props["outdir"] = str(Path(os.environ["CDK_OUTDIR"]).resolve())
    app = cdk.App(**props)
    nag.add_checks(app)
    return app, add_stages(app, **kwargs)
