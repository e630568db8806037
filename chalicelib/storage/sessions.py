"""Sessions (refresh-token families) and WebSocket connect tickets.

A refresh rotates the session's one usable token id with a condition on the id presented, so two uses of one
refresh token cannot both succeed; which one lost tells the service whether it was a stolen copy.
"""

from __future__ import annotations

from pynamodb.exceptions import UpdateError

from chalicelib.domain import SessionRecord
from chalicelib.storage.conditions import condition_failed
from chalicelib.storage.models import Session


class Rotated(Exception):
    """The presented token is no longer the session's current one (or the session ended)."""


def _session_key(session_id: str) -> str:
    return f"SESSION#{session_id}"


def _ticket_key(ticket_id: str) -> str:
    return f"WSTICKET#{ticket_id}"


def _record(item: Session) -> SessionRecord:
    return SessionRecord(
        session_id=item.pk.removeprefix("SESSION#"),
        user_id=item.user_id,
        epoch=int(item.epoch or 0),
        refresh_jti=item.refresh_jti or "",
        refresh_iat=int(item.refresh_iat or 0),
        expires_at=int(item.expires_at),
        previous_jti=item.previous_jti,
        rotated_at=int(item.rotated_at) if item.rotated_at is not None else None,
        revoked_at=int(item.revoked_at) if item.revoked_at is not None else None,
    )


class SessionRepository:
    def create(self, record: SessionRecord) -> None:
        Session(
            pk=_session_key(record.session_id),
            user_id=record.user_id,
            epoch=record.epoch,
            refresh_jti=record.refresh_jti,
            refresh_iat=record.refresh_iat,
            expires_at=record.expires_at,
        ).save(condition=Session.pk.does_not_exist())

    def get(self, session_id: str, *, consistent: bool = False) -> SessionRecord | None:
        try:
            return _record(Session.get(_session_key(session_id), consistent_read=consistent))
        except Session.DoesNotExist:
            return None

    def rotate(
        self, session_id: str, presented_jti: str, new_jti: str, new_iat: int, now: int, expires_at: int
    ) -> None:
        """Make `new_jti` the session's usable token if `presented_jti` still is. Raises Rotated otherwise."""
        try:
            Session(pk=_session_key(session_id)).update(
                actions=[
                    Session.previous_jti.set(presented_jti),
                    Session.refresh_jti.set(new_jti),
                    Session.refresh_iat.set(new_iat),
                    Session.rotated_at.set(now),
                    Session.expires_at.set(expires_at),
                ],
                condition=(Session.refresh_jti == presented_jti)
                & Session.revoked_at.does_not_exist()
                & (Session.expires_at > now),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                raise Rotated() from exc
            raise

    def revoke(self, session_id: str, now: int) -> None:
        """End the session (idempotent; the first revocation's time is kept)."""
        try:
            Session(pk=_session_key(session_id)).update(
                actions=[Session.revoked_at.set(now)],
                condition=Session.pk.exists() & Session.revoked_at.does_not_exist(),
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise

    # --- WebSocket connect tickets ----------------------------------------------------------------------
    def put_ticket(self, ticket_id: str, user_id: str, session_id: str | None, expires_at: int) -> None:
        Session(pk=_ticket_key(ticket_id), user_id=user_id, session_id=session_id, expires_at=expires_at).save(
            condition=Session.pk.does_not_exist()
        )

    def take_ticket(self, ticket_id: str, now: int) -> tuple[str, str | None] | None:
        """Consume a ticket (a conditional delete: only one connect gets it); (user, session) or None."""
        client = Session._get_connection().connection.client
        try:
            answer = client.delete_item(
                TableName=Session.Meta.table_name,
                Key={"pk": {"S": _ticket_key(ticket_id)}},
                ConditionExpression="attribute_exists(pk) AND expires_at > :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValues="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException:
            return None
        old = answer.get("Attributes", {})
        return old["user_id"]["S"], old.get("session_id", {}).get("S")
