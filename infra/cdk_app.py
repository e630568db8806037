"""Entry point of the CDK CLI (see infra/cdk.json): `cd infra && npx aws-cdk@2 deploy tickets-dev`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.synth import build_app  # noqa: E402

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
