"""Accounts use cases: register, log in, refresh, who am I, staff checks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import NamedTuple, NoReturn

from chalicelib import auth
from chalicelib.config import AbuseLimits
from chalicelib.domain import UserRecord
from chalicelib.errors import EmailTaken, Forbidden, NotFound, RateLimited, Unauthorized
from chalicelib.holds import iso
from chalicelib.limits import Limit, RateLimiter
from chalicelib.observability import logger, metrics
from chalicelib.services.sessions import SessionService
from chalicelib.storage.accounts import AccountRepository


class AccountService:
    """Raises EmailTaken, Unauthorized, Forbidden."""

    def __init__(
        self,
        repo: AccountRepository,
        token_config: Callable[[], auth.TokenConfig],
        *,
        scrypt_n: int,
        sessions: SessionService,
        limiter: RateLimiter | None = None,
        limits: AbuseLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self.sessions = sessions
        self._limiter = limiter
        self._limits = limits
        self._token_config = token_config
        self._scrypt_n = scrypt_n
        self._clock = clock
        self._dummy: str | None = None

    def register(self, email: str, password: str, *, is_staff: bool = False, source: str | None = None) -> UserRecord:
        """Raises EmailTaken, RateLimited (too many registrations from `source`)."""
        if source and self._limiter and self._limits:
            count, window = self._limits.register_per_source
            self._limiter.check(
                "register", source, {"hits": Limit(count, window)}, "Too many accounts from this address."
            )
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

    def login(self, email: str, password: str, *, source: str | None = None) -> dict[str, str]:
        """Raises Unauthorized, RateLimited (too many attempts from `source`, or failures on this account)."""
        email = email.lower()
        self._check_login_limits(email, source)
        user = self._repo.find_by_email(email)
        if user is None:
            # Same cost as a real check, so response time does not reveal which emails exist.
            if self._dummy is None:
                self._dummy = auth.dummy_hash(self._scrypt_n)
            auth.verify_password(password, self._dummy)
            self._failed_login(email)
        elif not auth.verify_password(password, user.password_hash):
            self._failed_login(email)
        metrics.add_metric(name="Logins", unit="Count", value=1)
        logger.info("user logged in", extra={"user_id": user.id})
        return self.sessions.start(user)

    def _check_login_limits(self, email: str, source: str | None) -> None:
        if not (self._limiter and self._limits):
            return
        if source:
            count, window = self._limits.login_per_source
            self._limiter.check("login", source, {"hits": Limit(count, window)}, "Too many sign-in attempts.")
        count, window = self._limits.login_failures_per_account
        # A locked account refuses every password, the right one too: else guessing would go on, one 429 apart.
        wait = self._limiter.blocked("login-failures", email, Limit(count, window), "failures")
        if wait is not None:
            metrics.add_metric(name="LoginsLocked", unit="Count", value=1)
            raise RateLimited("Too many failed sign-ins for this account; try again later.", retry_after=wait)

    def _failed_login(self, email: str) -> NoReturn:
        metrics.add_metric(name="LoginsFailed", unit="Count", value=1)
        if self._limiter and self._limits:
            count, window = self._limits.login_failures_per_account
            try:
                self._limiter.check("login-failures", email, {"failures": Limit(count, window)})
            except RateLimited:
                pass  # this attempt is answered 401 like any failure; the next one meets the lock
        raise Unauthorized("Wrong email or password.")

    def refresh(self, refresh_token: str) -> dict[str, str]:
        """Rotate: {"access", "refresh"}; the refresh token presented is spent. Raises Unauthorized."""
        return self.sessions.refresh(refresh_token)

    def authenticate(self, access_token: str) -> str:
        """The user id of a valid access token of a live session. Raises Unauthorized."""
        return self.sessions.authenticate(access_token).user_id

    def logout(self, access_token: str) -> None:
        """End the token's session everywhere: its refresh token, its access tokens, its sockets."""
        claims = self.sessions.authenticate(access_token)
        if claims.session_id:
            self.sessions.end(claims.session_id, claims.user_id, reason="signed out")

    def change_password(self, access_token: str, current: str, new: str) -> dict[str, str]:
        """Ends every session of the account and starts a new one for the caller: {"access", "refresh"}.
        Raises Unauthorized (wrong current password), RateLimited (too many wrong ones)."""
        claims = self.sessions.authenticate(access_token)
        user = self.user(claims.user_id)
        self._check_login_limits(user.email, None)
        if not auth.verify_password(current, user.password_hash):
            self._failed_login(user.email)
        epoch = self._repo.set_password(user.id, auth.hash_password(new, n=self._scrypt_n), user.session_epoch)
        tokens = self.sessions.start(user._replace(session_epoch=epoch))
        self.sessions.close_other_sockets(user.id, keep_session=None)
        metrics.add_metric(name="PasswordsChanged", unit="Count", value=1)
        logger.info("password changed; other sessions ended", extra={"user_id": user.id})
        return tokens

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

    def require_door(self, user_id: str) -> UserRecord:
        """Staff or a ticket scanner (who may check tickets in and read the revocation list, nothing else).
        Raises Forbidden."""
        user = self.user(user_id)
        if not (user.is_staff or user.is_scanner):
            raise Forbidden("Only staff and ticket scanners can do this.")
        return user

    def set_scanner(self, email: str, is_scanner: bool) -> dict:
        """Let an account check tickets in at the doors, or stop it (staff decide). Raises NotFound."""
        user = self._repo.find_by_email(email)
        if user is None:
            raise NotFound("No account with this email.")
        self._repo.set_scanner(user.id, is_scanner)
        logger.info("scanner role changed", extra={"target_user_id": user.id, "is_scanner": is_scanner})
        return {"id": user.id, "email": user.email, "is_staff": user.is_staff, "is_scanner": is_scanner}

    def ensure_staff_account(self, email: str, password: str, *, reset_existing: bool = False) -> StaffOutcome:
        """Create the account as staff; a staff account that exists is left as it is. Anyone may have registered
        an address before staff claimed it, so an existing account is only made staff with `reset_existing`:
        its password becomes `password` and every one of its sessions ends (nobody who knew the old password
        keeps a way in). Raises EmailTaken without it."""
        existing = self._repo.find_by_email(email)
        if existing is None:
            return StaffOutcome(self.register(email, password, is_staff=True), "created")
        if existing.is_staff:
            return StaffOutcome(existing, "already_staff")
        if not reset_existing:
            raise EmailTaken(
                "An account with this email exists and is not staff: promoting it would give staff rights to "
                "whoever set its password."
            )
        self._repo.set_password(existing.id, auth.hash_password(password, n=self._scrypt_n), existing.session_epoch)
        self._repo.set_staff(existing.id, True)
        return StaffOutcome(self.user(existing.id), "promoted")


class StaffOutcome(NamedTuple):
    user: UserRecord
    outcome: str  # created | already_staff | promoted (with the new password)
