"""Create a staff account on the configured tables.

    .venv/bin/python -m tools.create_staff --email ops@example.com                 # prompts, no echo
    printf '%s\\n' "$PW" | .venv/bin/python -m tools.create_staff --email ops@example.com --password-stdin

The tables are the app's own: TABLE_PREFIX (or STAGE), AWS_REGION and AWS_ENDPOINT_URL are read the same
way the Lambdas read them (chalicelib.config). A staff account that exists is left as it is. Anyone can register
any address, so an existing account that is not staff is refused: promoting it would give staff rights to
whoever set its password. `--reset-existing` promotes it with the password given here, ending every one of its
sessions. The password is never printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from pydantic import ValidationError

from chalicelib import tables
from chalicelib.config import ConfigError, get_settings
from chalicelib.errors import EmailTaken
from chalicelib.http import validation_message
from chalicelib.schemas import Credentials


class UsageError(Exception):
    """Bad input from the operator; the message is safe to print."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.create_staff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--email", required=True, help="the staff member's email address")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting",
    )
    parser.add_argument(
        "--reset-existing",
        action="store_true",
        help="promote an existing non-staff account, replacing its password with this one and ending its sessions",
    )
    return parser


def read_password(from_stdin: bool, stdin: TextIO) -> str:
    if from_stdin:
        line = stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not stdin.isatty():
        raise UsageError("no terminal to prompt on: pass the password with --password-stdin")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != password:
        raise UsageError("the passwords do not match")
    return password


def credentials(email: str, password: str) -> Credentials:
    try:
        return Credentials(email=email, password=password)
    except ValidationError as exc:
        raise UsageError(validation_message(exc)) from exc


def main(argv: list[str] | None = None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    try:
        creds = credentials(args.email, read_password(args.password_stdin, stdin))
        settings = get_settings()
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from chalicelib.wiring import Container  # boto3 is only imported once the input is valid

    accounts = Container(settings).accounts
    try:
        done = accounts.ensure_staff_account(creds.email, creds.password, reset_existing=args.reset_existing)
    except EmailTaken as exc:
        print(f"error: {exc} Pass --reset-existing to promote it with this password.", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - an operator tool: one readable line, no traceback
        print(
            f"error: the accounts table {settings.table_name(tables.USERS.logical)} could not be written: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    what = {
        "created": "created as staff",
        "already_staff": "is already staff (nothing changed)",
        "promoted": "promoted to staff with the new password (its other sessions ended)",
    }[done.outcome]
    user = done.user
    print(f"{user.email} {what}: id {user.id}, tables {settings.table_prefix}* in {settings.region}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
