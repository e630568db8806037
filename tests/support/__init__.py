"""Test support shared by every tier (unit, integration, e2e, browser) and the bench: the running stack, tables on
moto, payment flows, WebSocket rooms, PayPal's schemas. Test modules import from here, never from each other."""
