"""The local moto server: moto's own server app, made safe for the seat-lock tests and kept across restarts.

See README.md here for the modules. The stack uses `MotoProcess`; `python -m local.moto` runs it in the foreground.
"""

from local.moto.process import MotoProcess
from local.moto.server import endpoint_url

__all__ = ["MotoProcess", "endpoint_url"]
