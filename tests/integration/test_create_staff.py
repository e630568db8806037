"""`python -m tools.create_staff` in a fresh process, against tables named by the app's own env vars."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.wiring import Container

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Staff-pw!"


@pytest.fixture
def settings(settings_factory):
    return settings_factory()


def _run(settings, *args: str, stdin: str = "", table_prefix: str | None = None) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_ENDPOINT_URL", "TABLE_PREFIX", "STAGE", "JWT_"))
    }
    env.update(
        AWS_ENDPOINT_URL=settings.dynamodb_endpoint,
        AWS_REGION=settings.region,
        TABLE_PREFIX=table_prefix or settings.table_prefix,
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        PASSWORD_SCRYPT_N="1024",
    )
    return subprocess.run(
        [sys.executable, "-m", "tools.create_staff", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _email() -> str:
    return f"ops-{uuid.uuid4().hex[:10]}@example.com"


def test_creates_a_staff_account_that_can_log_in_and_never_echoes_the_password(settings):
    email = _email()
    result = _run(settings, "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "created as staff" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    accounts = Container(settings).accounts
    user_id = accounts.authenticate(accounts.login(email, PASSWORD)["access"])
    assert accounts.require_staff(user_id).email == email


def test_refuses_to_promote_an_account_someone_else_registered(settings):
    # An attacker registers the address staff will use, hoping the tool promotes it with the attacker's password.
    email = _email()
    accounts = Container(settings).accounts
    user = accounts.register(email, "attackers-password")
    result = _run(settings, "--email", email.upper(), "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == 2
    assert "--reset-existing" in result.stderr and PASSWORD not in result.stderr + result.stdout
    with pytest.raises(Forbidden):
        Container(settings).accounts.require_staff(user.id)


def test_reset_existing_promotes_with_the_new_password_and_ends_the_old_sessions(settings):
    email = _email()
    accounts = Container(settings).accounts
    user = accounts.register(email, "attackers-password")
    stolen = accounts.login(email, "attackers-password")
    result = _run(settings, "--email", email, "--password-stdin", "--reset-existing", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "promoted to staff with the new password" in result.stdout
    accounts = Container(settings).accounts
    assert accounts.require_staff(user.id).id == user.id
    with pytest.raises(Unauthorized):
        accounts.login(email, "attackers-password")
    with pytest.raises(Unauthorized):
        accounts.authenticate(stolen["access"])
    with pytest.raises(Unauthorized):
        accounts.refresh(stolen["refresh"])
    assert accounts.authenticate(accounts.login(email, PASSWORD)["access"]) == user.id


def test_an_existing_staff_account_is_left_as_it_is(settings):
    email = _email()
    assert _run(settings, "--email", email, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    again = _run(settings, "--email", email, "--password-stdin", stdin="another-password-1\n")
    assert again.returncode == 0 and "already staff (nothing changed)" in again.stdout
    assert Container(settings).accounts.login(email, PASSWORD)


def test_writes_only_to_the_tables_of_the_configured_prefix(settings, settings_factory):
    other = settings_factory()
    email = _email()
    assert _run(other, "--email", email, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert Container(other).accounts.is_registered(email)
    assert not Container(settings).accounts.is_registered(email)


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [("not-an-email", PASSWORD, "email"), (None, "short", "password"), (None, "x" * 1025, "password")],
)
def test_invalid_input_is_refused_naming_the_field_and_creates_nothing(settings, email, password, field):
    email = email or _email()
    result = _run(settings, "--email", email, "--password-stdin", stdin=password + "\n")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {field}: ")
    assert password not in result.stderr + result.stdout
    assert not Container(settings).accounts.is_registered(email)


def test_without_a_terminal_or_password_stdin_it_refuses_instead_of_reading_a_visible_password(settings):
    email = _email()
    result = _run(settings, "--email", email, stdin=PASSWORD + "\n")
    assert result.returncode == 2
    assert "--password-stdin" in result.stderr
    assert not Container(settings).accounts.is_registered(email)


def test_missing_tables_fail_with_one_readable_line(settings):
    result = _run(
        settings,
        "--email",
        _email(),
        "--password-stdin",
        stdin=PASSWORD + "\n",
        table_prefix=f"absent-{uuid.uuid4().hex[:6]}-",
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: the accounts table absent-")
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr
