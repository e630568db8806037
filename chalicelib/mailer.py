"""Amazon SES (v1 SendEmail) behind one method; its errors become EmailNotSent, read by error code."""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.emails import Email


class EmailNotSent(Exception):
    """SES refused the email or could not be reached; `code` is SES's error code (or the botocore error's name)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"SES did not send the email: {code}")
        self.code = code


class Mailer:
    """Sends from the configured, SES-verified sender. Raises EmailNotSent."""

    def __init__(self, client_factory: Callable[[], object], sender: str) -> None:
        self._client_factory = client_factory
        self._client: object | None = None
        self._sender = sender

    def send(self, to: str, email: Email) -> str:
        """Returns SES's message id."""
        if self._client is None:
            self._client = self._client_factory()
        try:
            answer = self._client.send_email(  # type: ignore[attr-defined]
                Source=self._sender,
                Destination={"ToAddresses": [to]},
                Message={
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": "UTF-8"},
                        "Html": {"Data": email.html, "Charset": "UTF-8"},
                    },
                },
            )
        # `from None`: SES's message may quote the buyer's address, and the worker's failure is logged with its
        # cause; the code is what an operator needs.
        except ClientError as exc:
            raise EmailNotSent(exc.response.get("Error", {}).get("Code", "Unknown")) from None
        except BotoCoreError as exc:
            raise EmailNotSent(type(exc).__name__) from None
        return answer["MessageId"]
