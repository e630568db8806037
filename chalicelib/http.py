"""The single map from domain errors to HTTP responses, and request-body parsing."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from chalice.app import Response

from chalicelib import errors
from chalicelib.observability import logger

if TYPE_CHECKING:  # pydantic is imported by the first request that parses something (cold start)
    from pydantic import BaseModel, ValidationError

MAX_BODY_BYTES = 64 * 1024

STATUS: dict[type[errors.DomainError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Conflict: 409,
    errors.PaymentDeclined: 422,
    errors.Unprocessable: 422,
    errors.Unavailable: 503,
    errors.RateLimited: 429,
    errors.PaymentProviderUnavailable: 503,
    errors.WebhooksDisabled: 503,
}

JSON_HEADERS: dict[str, str | list[str]] = {"Content-Type": "application/json"}

M = TypeVar("M", bound="BaseModel")


def status_for(exc: errors.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


def error_body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def error_response(exc: errors.DomainError) -> Response:
    headers = dict(JSON_HEADERS)  # a dict of its own: Chalice writes CORS headers into a response's headers
    body: dict[str, object] = {**error_body(exc.code, exc.message)}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
        body["retry_after"] = exc.retry_after
    return Response(body=body, status_code=status_for(exc), headers=headers)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(body=body, status_code=status, headers=dict(JSON_HEADERS))


def internal_error() -> Response:
    return Response(
        body=error_body("internal_error", "Something went wrong on our side; please retry."),
        status_code=500,
        headers=dict(JSON_HEADERS),
    )


def endpoint(status: int = 200) -> Callable:
    """Wrap a view: dict result -> JSON response; DomainError -> contract error; anything else -> 500."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                result = view(*args, **kwargs)
            except errors.DomainError as exc:
                return error_response(exc)
            except Exception:  # noqa: BLE001 - the boundary: log it, never leak it
                logger.exception("unhandled error in view", extra={"view": view.__name__})
                return internal_error()
            if isinstance(result, Response):
                return result
            return json_response(result, status)

        return wrapper

    return decorate


def _field_path(loc: tuple, where: str) -> str:
    return ".".join(str(part) for part in loc) or where


def validation_message(exc: ValidationError, where: str = "body") -> str:
    """'<field>: <what is wrong>' for the first error, so a client knows which field to fix."""
    first = exc.errors(include_url=False)[0]
    field = _field_path(tuple(first.get("loc", ())), where)
    if first.get("type") == "extra_forbidden":
        return f"{field}: unknown field"
    message = str(first.get("msg") or "invalid value")
    # pydantic prefixes messages raised by our own validators; the client only needs the reason.
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return f"{field}: {message}"


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON (RFC 8259) although Python's parser accepts them.
    raise ValueError(f"{name} is not valid JSON")


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError as exc:
        raise errors.BadRequest("body: JSON nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest("body: malformed JSON") from exc


def parse_body(raw: bytes | str | None, content_type: str | None, model: type[M]) -> M:
    """Parse a JSON object body into a model. Raises PayloadTooLarge, UnsupportedMediaType, BadRequest."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    raw = raw or b""
    if len(raw) > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"The body is larger than {MAX_BODY_BYTES // 1024} KB.")
    if not content_type or not _is_json(content_type):
        raise errors.UnsupportedMediaType()  # no Content-Type is no promise of JSON either
    if not raw.strip():
        raise errors.BadRequest("body: a JSON object is required")
    data = _decode_json(raw)
    if not isinstance(data, dict):
        raise errors.BadRequest("body: a JSON object is required")
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise errors.BadRequest(validation_message(exc)) from exc


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def parse_query(params: dict[str, str] | None, model: type[M]) -> M:
    """Validate query parameters against a model. Raises BadRequest naming the parameter."""
    from pydantic import ValidationError

    try:
        return model.model_validate(dict(params or {}))
    except ValidationError as exc:
        raise errors.BadRequest(validation_message(exc, where="query")) from exc
