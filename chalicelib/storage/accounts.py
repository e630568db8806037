"""Users repository: an account item and an email pointer, written together."""

from __future__ import annotations

from pynamodb.exceptions import TransactWriteError, UpdateError

from chalicelib.domain import UserRecord
from chalicelib.errors import Busy, EmailTaken
from chalicelib.storage.conditions import cancellation_reasons, condition_failed, item_failed
from chalicelib.storage.models import User, transact_write


def _user_key(user_id: str) -> str:
    return f"USER#{user_id}"


def _email_key(email: str) -> str:
    return f"EMAIL#{email.lower()}"


class AccountRepository:
    """Raises EmailTaken when an email is registered twice, whatever the timing."""

    def create(self, record: UserRecord, created_at: str) -> None:
        try:
            with transact_write() as tx:
                tx.save(
                    User(pk=_email_key(record.email), user_id=record.id),
                    condition=User.pk.does_not_exist(),
                )
                tx.save(
                    User(
                        pk=_user_key(record.id),
                        user_id=record.id,
                        email=record.email.lower(),
                        password_hash=record.password_hash,
                        is_staff=record.is_staff,
                        created_at=created_at,
                    ),
                    condition=User.pk.does_not_exist(),
                )
        except TransactWriteError as exc:
            if item_failed(cancellation_reasons(exc), 0):
                raise EmailTaken() from exc
            raise

    def get(self, user_id: str) -> UserRecord | None:
        try:
            item = User.get(_user_key(user_id))
        except User.DoesNotExist:
            return None
        return UserRecord(
            id=item.user_id or user_id,
            email=item.email or "",
            password_hash=item.password_hash or "",
            is_staff=bool(item.is_staff),
            session_epoch=int(item.session_epoch or 0),
            is_scanner=bool(item.is_scanner),
        )

    def find_by_email(self, email: str) -> UserRecord | None:
        try:
            pointer = User.get(_email_key(email))
        except User.DoesNotExist:
            return None
        return self.get(pointer.user_id) if pointer.user_id else None

    def set_staff(self, user_id: str, is_staff: bool) -> None:
        User(pk=_user_key(user_id)).update(actions=[User.is_staff.set(is_staff)], condition=User.pk.exists())

    def set_scanner(self, user_id: str, is_scanner: bool) -> None:
        User(pk=_user_key(user_id)).update(actions=[User.is_scanner.set(is_scanner)], condition=User.pk.exists())

    def set_password(self, user_id: str, password_hash: str, epoch: int) -> int:
        """Store a new password hash and move the session epoch past `epoch` (ending every session begun
        before); returns the new epoch. Raises StaleSessionEpoch when another change moved it meanwhile."""
        try:
            User(pk=_user_key(user_id)).update(
                actions=[User.password_hash.set(password_hash), User.session_epoch.set(epoch + 1)],
                condition=User.pk.exists()
                & (
                    User.session_epoch == epoch
                    if epoch
                    else User.session_epoch.does_not_exist() | (User.session_epoch == 0)
                ),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                raise Busy("Your account changed meanwhile; please retry.") from exc
            raise
        return epoch + 1
