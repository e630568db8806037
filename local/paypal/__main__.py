"""`python -m local.paypal [--port 8081] [--webhook-url URL]`: the emulator in the foreground under /paypal."""

from local.paypal.app import main

main()
