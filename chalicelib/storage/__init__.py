"""pynamodb models and the repositories over them; the models never leave this package.

`bind_models` points every model at the tables named by the settings; `warm_clients` builds their clients ahead of
the first request (the local runtime does it at start).
"""

from chalicelib.storage.models import bind_models, warm_clients

__all__ = ["bind_models", "warm_clients"]
