"""E-ticket signing keys (chalicelib/etickets.py): make a keyset, or rotate one (a new current key; the old keys
stay, so tickets already issued still scan). Reads the current keyset on stdin for `rotate`, prints JSON.

    python -m tools.ticket_keys new > keys.json
    aws secretsmanager get-secret-value --secret-id tickets-prod/ticket-keys --query SecretString --output text \\
      | python -m tools.ticket_keys rotate > keys.json
    aws secretsmanager put-secret-value --secret-id tickets-prod/ticket-keys --secret-string file://keys.json

Containers read the keyset once: after a rotation, new containers sign with the new key, older ones go on with
the previous one until they are recycled (both verify everywhere once the new key is published).
"""

from __future__ import annotations

import argparse
import sys

from chalicelib.etickets import Keyset, new_keyset_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ticket_keys", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("new", "rotate"))
    args = parser.parse_args(argv)
    previous = None
    if args.command == "rotate":
        previous = sys.stdin.read()
        Keyset.parse(previous)  # refuse to rotate something that is not a keyset
    print(new_keyset_json(previous))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
