"""A stateful local emulator of the PayPal REST endpoints the backend uses (dev and tests only, never packaged).

See README.md here for the modules. `create_paypal_app` builds it for mounting under /paypal; `start_standalone`
serves it on its own; `python -m local.paypal` runs it in the foreground.
"""

from local.paypal.app import create_paypal_app, emulator_of, start_standalone

__all__ = ["create_paypal_app", "emulator_of", "start_standalone"]
