"""Accounts use cases: register, log in, refresh, who am I, staff checks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from chalicelib import auth
from chalicelib.domain import UserRecord
from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.holds import iso
from chalicelib.observability import logger, metrics
from chalicelib.storage.accounts import AccountRepository


class AccountService:
    """Raises EmailTaken, Unauthorized, Forbidden."""

    def __init__(
        self,
        repo: AccountRepository,
        token_config: Callable[[], auth.TokenConfig],
        *,
        scrypt_n: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._token_config = token_config
        self._scrypt_n = scrypt_n
        self._clock = clock
        self._dummy: str | None = None

    def register(self, email: str, password: str, *, is_staff: bool = False) -> UserRecord:
        record = UserRecord(
            id=uuid.uuid4().hex,
            email=email.lower(),
            password_hash=auth.hash_password(password, n=self._scrypt_n),
            is_staff=is_staff,
        )
        self._repo.create(record, created_at=iso(self._clock()))
        metrics.add_metric(name="Registrations", unit="Count", value=1)
        logger.info("user registered", extra={"user_id": record.id})
        return record

    def login(self, email: str, password: str) -> dict[str, str]:
        user = self._repo.find_by_email(email)
        if user is None:
            # Same cost as a real check, so response time does not reveal which emails exist.
            if self._dummy is None:
                self._dummy = auth.dummy_hash(self._scrypt_n)
            auth.verify_password(password, self._dummy)
            metrics.add_metric(name="LoginsFailed", unit="Count", value=1)
            raise Unauthorized("Wrong email or password.")
        if not auth.verify_password(password, user.password_hash):
            metrics.add_metric(name="LoginsFailed", unit="Count", value=1)
            raise Unauthorized("Wrong email or password.")
        metrics.add_metric(name="Logins", unit="Count", value=1)
        logger.info("user logged in", extra={"user_id": user.id})
        return self._tokens(user.id)

    def refresh(self, refresh_token: str) -> dict[str, str]:
        claims = auth.verify_token(self._token_config(), refresh_token, "refresh")
        if self._repo.get(claims.user_id) is None:
            raise Unauthorized("The account no longer exists.")
        return {"access": auth.issue_token(self._token_config(), claims.user_id, "access", now=self._clock())}

    def authenticate(self, access_token: str) -> str:
        """The user id of a valid access token. Raises Unauthorized."""
        return auth.verify_token(self._token_config(), access_token, "access").user_id

    def user(self, user_id: str) -> UserRecord:
        user = self._repo.get(user_id)
        if user is None:
            raise Unauthorized("The account no longer exists.")
        return user

    def require_staff(self, user_id: str) -> UserRecord:
        user = self.user(user_id)
        if not user.is_staff:
            raise Forbidden("Only staff can do this.")
        return user

    def is_registered(self, email: str) -> bool:
        return self._repo.find_by_email(email) is not None

    def ensure_staff_account(self, email: str, password: str) -> UserRecord:
        """Create the account as staff, or promote it if the email exists (password unchanged)."""
        existing = self._repo.find_by_email(email)
        if existing is not None:
            if not existing.is_staff:
                self._repo.set_staff(existing.id, True)
            return self.user(existing.id)
        return self.register(email, password, is_staff=True)

    def _tokens(self, user_id: str) -> dict[str, str]:
        config = self._token_config()
        now = self._clock()
        return {
            "access": auth.issue_token(config, user_id, "access", now=now),
            "refresh": auth.issue_token(config, user_id, "refresh", now=now),
        }
