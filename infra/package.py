"""`make package`: synthesize every stage into build/, lint the templates, check and measure the Lambda package.

    python -m infra.package [--stages dev,prod] [--skip-lint]

Writes build/cdk.out/ (the cloud assembly `cdk deploy --app build/cdk.out` can deploy), build/templates/
(one CloudFormation template per stack, what cfn-lint reads) and build/lambda/deployment.zip (the package
every function runs). Exits non-zero if synthesis reports an error (cdk-nag's AwsSolutions findings nobody
acknowledged, infra/nag.py), cfn-lint reports an error, or the package holds something it must not.
No AWS account is needed; pip may download the Lambda dependencies from PyPI on the first run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from infra import bundle
from infra.settings import STAGES

BUILD_DIR = bundle.BUILD_DIR
# cfn-lint's exit code is a bit mask: 1 fatal, 2 error, 4 warning, 8 informational.
_LINT_FAILURE_BITS = 1 | 2


def top_level_names(archive: zipfile.ZipFile) -> set[str]:
    """Importable names at the root of a zip: packages, modules and distributions (dist-info names)."""
    names: set[str] = set()
    for entry in archive.namelist():
        first = entry.split("/", 1)[0]
        if first.endswith((".dist-info", ".egg-info")):
            first = first.split("-", 1)[0]
        elif first.endswith((".py", ".pyc", ".so")):
            first = first.split(".", 1)[0]
        names.add(first.lower().replace("-", "_"))
    return names


def package_problems(path: Path) -> list[str]:
    """What is wrong with a deployment package: forbidden content, or the app missing from it."""
    with zipfile.ZipFile(path) as archive:
        names = top_level_names(archive)
        entries = archive.namelist()
    problems = [f"the package contains {name}/" for name in bundle.FORBIDDEN_IN_PACKAGE if name in names]
    if "app.py" not in entries:
        problems.append("the package has no app.py")
    if not any(entry.startswith("chalicelib/") for entry in entries):
        problems.append("the package has no chalicelib/")
    return problems


def package_size(path: Path) -> tuple[int, int, int]:
    """(zipped bytes, unzipped bytes, files) of a deployment package."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    return path.stat().st_size, sum(info.file_size for info in infos), len(infos)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"


def cfn_lint(templates: list[Path]) -> int:
    """Run cfn-lint on the templates, print its report, and return its exit code."""
    script = Path(sys.executable).with_name("cfn-lint")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from cfnlint.runner import main; main()"]
    result = subprocess.run([*command, *map(str, templates)], capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).strip()
    if output:
        print(output)
    return result.returncode


def synthesis_findings(assembly) -> tuple[list[str], list[str]]:
    """(errors, warnings) the cloud assembly's stacks were annotated with: cdk-nag's findings, aws-cdk-lib's notes."""
    found: dict[str, list[str]] = {"error": [], "warning": []}
    for artifact in assembly.stacks:
        for message in artifact.messages:
            level = str(message.level.value).lower()
            if level in found:
                found[level].append(f"{artifact.stack_name} {message.id}: {str(message.entry.data).splitlines()[0]}")
    return found["error"], found["warning"]


def synthesize(stages: tuple[str, ...], outdir: Path) -> tuple[list[Path], Path, list[str]]:
    """Synthesize into `outdir`; returns the stack templates copied to build/templates, the package zip and the
    synthesis errors (printed with the warnings)."""
    from infra.synth import build_app  # aws_cdk starts a Node process: import only when needed

    if outdir.exists():
        shutil.rmtree(outdir)
    app, stacks = build_app(outdir, stages=stages)
    assembly = app.synth()
    template_dir = BUILD_DIR / "templates"
    shutil.rmtree(template_dir, ignore_errors=True)
    template_dir.mkdir(parents=True)
    templates = []
    for artifact in assembly.stacks:
        target = template_dir / f"{artifact.stack_name}.template.json"
        shutil.copyfile(artifact.template_full_path, target)
        templates.append(target)
    first = next(iter(stacks.values()))
    package = BUILD_DIR / "lambda" / "deployment.zip"
    package.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(first.chalice._sam_package_dir) / "deployment.zip", package)  # noqa: SLF001
    errors, warnings = synthesis_findings(assembly)
    for line in sorted(set(warnings)):
        print(f"synthesis warning: {line}")
    for line in sorted(set(errors)):
        print(f"synthesis error: {line}", file=sys.stderr)
    return templates, package, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages (default: all)")
    parser.add_argument("--skip-lint", action="store_true", help="synthesize and measure only")
    args = parser.parse_args(argv)
    stages = tuple(name.strip() for name in args.stages.split(",") if name.strip())

    started = time.monotonic()
    templates, package, errors = synthesize(stages, BUILD_DIR / "cdk.out")
    print(
        f"synthesized {', '.join(t.name for t in templates)} into {BUILD_DIR / 'templates'} "
        f"({time.monotonic() - started:.1f} s); {len(set(errors))} synthesis errors (cdk-nag AwsSolutions included)"
    )

    failed = bool(errors)
    if not args.skip_lint:
        code = cfn_lint(templates)
        if code & _LINT_FAILURE_BITS:
            print(f"cfn-lint: errors (exit code {code})", file=sys.stderr)
            failed = True
        else:
            print("cfn-lint: 0 errors" + (" (warnings above)" if code else ", 0 warnings"))

    zipped, unzipped, files = package_size(package)
    print(
        f"Lambda package {package.relative_to(bundle.REPO_ROOT)}: {_mib(zipped)} zipped, "
        f"{_mib(unzipped)} unzipped, {files} files (limits: 50 MiB zipped, 250 MiB unzipped)"
    )
    for problem in package_problems(package):
        print(f"package check: {problem}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
