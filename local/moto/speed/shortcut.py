"""Speed: DynamoDB and DynamoDB Streams requests go straight to moto's handler, past Flask."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class JsonTargetShortcut:
    """WSGI middleware: DynamoDB and DynamoDB Streams requests (POST / with an X-Amz-Target) go straight to
    the handler moto's Flask route would call, with the request class moto's app uses; everything else goes
    to moto's app. Finding the backend and running Flask's request machinery cost about a sixth of moto's
    CPU per table operation; the handler, and so every answer and error, is the same."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        from moto.dynamodb.responses import DynamoHandler
        from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

        self._app = app
        self._dispatchers: dict[str, Callable[..., Any]] = {
            "DynamoDB_20120810": DynamoHandler.dispatch,
            "DynamoDBStreams_20120810": DynamoDBStreamsHandler.dispatch,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        dispatch = None
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/":
            dispatch = self._dispatchers.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0])
        if dispatch is None:
            return self._app(environ, start_response)
        return self._direct(dispatch, environ, start_response)

    @staticmethod
    def _direct(
        dispatch: Callable[..., Any], environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        # What moto.core.utils.convert_to_flask_response does around the handler.
        from botocore.exceptions import ClientError
        from moto.moto_api import recorder
        from moto.moto_server.werkzeug_app import BackendRequest
        from werkzeug.wrappers import Response

        request = BackendRequest(environ)
        try:
            recorder._record_request(request)
            result = dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, body = result if len(result) == 3 else (200, {}, result)
        response = Response(response=body, status=status, headers=headers)
        # What flask_cors adds to every answer of moto's app (its defaults: any origin).
        response.headers["Access-Control-Allow-Origin"] = environ.get("HTTP_ORIGIN") or "*"
        return response(environ, start_response)
