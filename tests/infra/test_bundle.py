"""The Lambda package: dependencies resolved for the runtime without boto3/botocore, app code only."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from infra import bundle
from infra.package import package_problems


def _item(name: str, version: str, requires: list[str], requested: bool = False, extras: list[str] | None = None):
    item = {"metadata": {"name": name, "version": version, "requires_dist": requires}, "requested": requested}
    if extras:
        item["requested_extras"] = extras
    return item


ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}


def _report(*items) -> dict:
    return {"install": list(items), "environment": ENVIRONMENT}


def test_closure_drops_packages_needed_only_by_the_runtime_provided_ones():
    report = _report(
        _item("pynamodb", "6.1.0", ["botocore>=1.12", 'typing-extensions>=4; python_version < "3.11"'], True),
        _item("requests", "2.32.0", ["urllib3<3", "idna"], True),
        _item("botocore", "1.35.0", ["jmespath", "python-dateutil", "urllib3"]),
        _item("python-dateutil", "2.9.0", ["six>=1.5"]),
        _item("six", "1.16.0", []),
        _item("jmespath", "1.0.1", []),
        _item("urllib3", "2.2.3", []),
        _item("idna", "3.7", []),
        _item("typing-extensions", "4.12.0", []),
    )

    kept = bundle.lambda_closure(report)

    assert kept == {"idna": "3.7", "pynamodb": "6.1.0", "requests": "2.32.0", "urllib3": "2.2.3"}


def test_closure_keeps_a_shared_dependency_and_follows_requested_extras_only():
    report = _report(
        _item(
            "aws_lambda_powertools",
            "3.0.0",
            ["jmespath<2", "aws-xray-sdk>=2.8; extra == 'tracer'", "fastjsonschema; extra == 'all'"],
            True,
            ["tracer"],
        ),
        _item("aws-xray-sdk", "2.14.0", ["wrapt", "botocore>=1.11"]),
        _item("fastjsonschema", "2.20.0", []),
        _item("wrapt", "1.16.0", []),
        _item("jmespath", "1.0.1", []),
        _item("botocore", "1.35.0", ["jmespath"]),
    )

    kept = bundle.lambda_closure(report)

    assert set(kept) == {"aws_lambda_powertools", "aws-xray-sdk", "wrapt", "jmespath"}


def test_staged_project_holds_the_app_and_its_config_and_nothing_else(tmp_path):
    project = bundle.stage_project(tmp_path / "project", vendor=None)

    top = {path.name for path in project.iterdir()}
    assert top == {"app.py", "chalicelib", ".chalice", "requirements.txt"}
    assert [p.name for p in (project / ".chalice").iterdir()] == ["config.json"]
    assert (project / "requirements.txt").read_text().strip().startswith("#")  # chalice runs no pip
    sources = {p.relative_to(project / "chalicelib") for p in (project / "chalicelib").rglob("*.py")}
    expected = {p.relative_to(bundle.REPO_ROOT / "chalicelib") for p in (bundle.REPO_ROOT / "chalicelib").rglob("*.py")}
    assert sources == expected


def test_staged_app_code_ships_bytecode_that_stays_valid_in_a_read_only_zip(tmp_path):
    project = bundle.stage_project(tmp_path / "project", vendor=None)

    compiled = list((project / "chalicelib").rglob("*.cpython-311.pyc"))
    assert compiled
    for pyc in compiled:
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, pyc  # hash-based, unchecked: no source timestamp to go stale


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "")
    return path


def test_package_check_accepts_app_code_with_its_dependencies(tmp_path):
    package = _zip(tmp_path / "ok.zip", ["app.py", "chalicelib/__init__.py", "pynamodb/__init__.py", "jwt/api_jwt.py"])
    assert package_problems(package) == []


@pytest.mark.parametrize(
    "entry, name",
    [
        ("botocore/__init__.py", "botocore"),
        ("boto3-1.35.0.dist-info/METADATA", "boto3"),
        ("s3transfer/__init__.py", "s3transfer"),
        ("moto/__init__.py", "moto"),
        ("local/gateway.py", "local"),
        ("tests/test_app.py", "tests"),
    ],
)
def test_package_check_rejects_what_must_not_ship(tmp_path, entry, name):
    package = _zip(tmp_path / "bad.zip", ["app.py", "chalicelib/__init__.py", entry])
    assert package_problems(package) == [f"the package contains {name}/"]


def test_package_check_rejects_a_package_without_the_app(tmp_path):
    package = _zip(tmp_path / "empty.zip", ["pynamodb/__init__.py"])
    assert package_problems(package) == ["the package has no app.py", "the package has no chalicelib/"]


@pytest.mark.slow
def test_real_requirements_resolve_for_lambda_without_boto3_or_botocore(tmp_path):
    # Asks PyPI (or the configured index) for the Lambda platform's wheels; installs nothing.
    kept = bundle.lambda_closure(bundle.resolve(bundle.REPO_ROOT / "requirements.txt", tmp_path))

    names = {name.lower().replace("_", "-") for name in kept}
    assert {"pynamodb", "pyjwt", "requests", "aws-lambda-powertools"} <= names
    assert not names & {"boto3", "botocore", "s3transfer", "python-dateutil", "moto"}
