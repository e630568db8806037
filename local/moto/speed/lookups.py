"""Speed: lookups moto repeats on every request, done once: it listed its package directory (which backends
exist) and inspected a response class's methods for every request."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any


def _listed(original: Callable[[], Iterable[str]]) -> Callable[[], tuple[str, ...]]:
    def listed() -> tuple[str, ...]:
        return tuple(original())

    return listed


def patches() -> list[tuple[Any, str, Any]]:
    from moto import backends as moto_backends
    from moto.core import responses as moto_responses
    from moto.core import utils as moto_utils

    return [
        (moto_backends, "list_of_moto_modules", functools.cache(_listed(moto_backends.list_of_moto_modules))),
        (moto_responses, "method_names_from_class", functools.cache(moto_utils.method_names_from_class)),
    ]
