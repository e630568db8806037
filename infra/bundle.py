"""The Lambda project that Chalice packages: app code only, plus dependencies built for the Lambda runtime.

Why not let `chalice package` install requirements.txt itself: pip would follow pynamodb and aws-xray-sdk to
botocore (and boto3's other parts), about 30 MB that the Lambda runtime already provides. Here the requirements
are resolved once for the Lambda platform, everything reachable only through the runtime-provided packages is
dropped, the rest is installed with --no-deps into the project's `vendor/` folder (Chalice copies it into the
zip as is), and precompiled: /var/task is read-only, so without shipped .pyc files every cold start compiles
every module it imports. Unchecked-hash .pyc files stay valid whatever timestamps the zip keeps.

The staged project holds app.py, chalicelib/ and .chalice/config.json only: nothing from local/ or tests/.
"""

from __future__ import annotations

import compileall
import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build"

LAMBDA_PYTHON = "3.11"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
# The Lambda Python runtime ships these; bundling them only adds megabytes (botocore alone is ~25 MB unzipped).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "awscrt"})
# Names that must never reach the package, whatever pulls them in.
FORBIDDEN_IN_PACKAGE = ("boto3", "botocore", "s3transfer", "moto", "local", "tests", "bench", "pytest", "aws_cdk")

_APP_FILES = ("app.py", "chalicelib", ".chalice/config.json")
# Bump when the layout of a built vendor folder changes, so stale caches are rebuilt.
_VENDOR_FORMAT = "1"


class BundleError(RuntimeError):
    """Resolving or installing the Lambda dependencies failed; the message carries pip's output."""


def _pip(args: list[str]) -> None:
    command = [sys.executable, "-m", "pip", *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BundleError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def _platform_args() -> list[str]:
    return [
        "--platform",
        LAMBDA_PLATFORM,
        "--python-version",
        LAMBDA_PYTHON,
        "--implementation",
        "cp",
        "--abi",
        "cp" + LAMBDA_PYTHON.replace(".", ""),
        "--only-binary=:all:",
    ]


def resolve(requirements: Path, workdir: Path) -> dict:
    """pip's installation report for `requirements` on the Lambda platform (nothing is installed)."""
    report = workdir / "report.json"
    _pip(
        [
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--target",
            str(workdir / "unused"),
            *_platform_args(),
            "-r",
            str(requirements),
        ]
    )
    return json.loads(report.read_text())


def lambda_closure(report: dict, exclude: Iterable[str] = RUNTIME_PROVIDED) -> dict[str, str]:
    """name -> version of every resolved package the requested ones need without passing through `exclude`.

    A package needed both by an excluded one and by a kept one (urllib3, jmespath) is kept; one needed only
    through an excluded package (python-dateutil, six via botocore) is dropped.
    """
    excluded = {canonicalize_name(name) for name in exclude}
    items = {canonicalize_name(item["metadata"]["name"]): item for item in report["install"]}
    environment = dict(report.get("environment") or {})
    pending: list[tuple[str, frozenset[str]]] = [
        (name, frozenset(item.get("requested_extras") or ()))
        for name, item in items.items()
        if item.get("requested") and name not in excluded
    ]
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        for raw in items[name]["metadata"].get("requires_dist") or ():
            requirement = Requirement(raw)
            if not _applies(requirement.marker, environment, extras):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency in excluded or dependency not in items:
                continue
            pending.append((dependency, frozenset(requirement.extras)))
    kept = {name for name, _ in visited}
    return {items[name]["metadata"]["name"]: items[name]["metadata"]["version"] for name in sorted(kept)}


def _applies(marker: Marker | None, environment: dict[str, str], extras: frozenset[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""}))


def _vendor_key(requirements: Path) -> str:
    digest = hashlib.sha256()
    for part in (
        requirements.read_bytes(),
        LAMBDA_PYTHON.encode(),
        LAMBDA_PLATFORM.encode(),
        ",".join(sorted(RUNTIME_PROVIDED)).encode(),
        _VENDOR_FORMAT.encode(),
    ):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def build_vendor(
    requirements: Path = REPO_ROOT / "requirements.txt", cache_dir: Path = BUILD_DIR / "lambda-deps"
) -> Path:
    """The vendor folder for `requirements` (built once per requirements content, then reused)."""
    target = cache_dir / _vendor_key(requirements)
    if (target / "manifest.json").exists():
        return target / "vendor"
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="building-", dir=cache_dir))
    try:
        pins = lambda_closure(resolve(requirements, work))
        vendor = work / "vendor"
        _pip(
            [
                "install",
                "--quiet",
                "--no-deps",
                "--no-compile",
                "--target",
                str(vendor),
                *_platform_args(),
                *[f"{name}=={version}" for name, version in pins.items()],
            ]
        )
        shutil.rmtree(vendor / "bin", ignore_errors=True)
        precompile(vendor)
        (work / "manifest.json").write_text(json.dumps({"packages": pins}, indent=2))
        (work / "report.json").unlink(missing_ok=True)
        shutil.rmtree(work / "unused", ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / "vendor"


def precompile(folder: Path) -> None:
    """Write unchecked-hash .pyc files next to every module (valid in a read-only, re-timestamped zip)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != LAMBDA_PYTHON:
        return  # bytecode of another interpreter version would be ignored by the runtime: ship sources only
    compileall.compile_dir(
        str(folder),
        quiet=2,
        workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def stage_project(dest: Path, vendor: Path | None) -> Path:
    """A Chalice project in `dest` with the app code, the Chalice config and, if given, the vendor folder."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for relative in _APP_FILES:
        source = REPO_ROOT / relative
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    # Dependencies come from vendor/ only: an empty requirements file keeps chalice from running pip.
    (dest / "requirements.txt").write_text("# Dependencies are vendored by infra/bundle.py.\n")
    precompile(dest / "chalicelib")
    if vendor is not None:
        _link_tree(vendor, dest / "vendor")
        precompile_outside_vendor(dest, dest / "vendor")
    return dest


def precompile_outside_vendor(project: Path, vendor: Path) -> None:
    """Bytecode for the sources Chalice's packager adds to the zip root itself: app.py, and chalice/app.py and
    chalice/__init__.py from the installed Chalice. The packager ships them without .pyc, so every cold start
    compiled them (~20 ms: chalice/app.py is 90 KB); vendor/ is copied to the zip root as is, so a .pyc written
    under vendor/__pycache__ lands next to app.py in the package."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != LAMBDA_PYTHON:
        return
    import chalice
    import chalice.app

    chalice_dir = Path(chalice.__file__).parent
    sources = {
        project / "app.py": vendor / "app.py",
        Path(chalice.app.__file__): vendor / "chalice" / "app.py",
        chalice_dir / "__init__.py": vendor / "chalice" / "__init__.py",
    }
    if (vendor / "chalice").exists():
        raise BundleError(f"{vendor / 'chalice'} exists: Chalice would be shipped twice")
    for source, zip_path in sources.items():
        py_compile.compile(
            str(source),
            cfile=importlib.util.cache_from_source(str(zip_path)),
            dfile=zip_path.name if zip_path.parent == vendor else f"chalice/{zip_path.name}",
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


def _link_tree(source: Path, dest: Path) -> None:
    try:
        shutil.copytree(source, dest, copy_function=os.link)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest)
