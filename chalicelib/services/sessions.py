"""Sessions that can end: short access tokens, rotating refresh tokens with reuse detection, sign-out, and the
single-use tickets a WebSocket connects with.

A sign-in is a session (a refresh-token family). Every refresh rotates the family's one usable refresh token; a
token used a second time, after the moment two tabs may need (`reuse_grace_seconds`), can only be a stolen copy
(or the thief's first use made the owner's copy old): the whole family is revoked, and its sockets closed. Access
tokens carry their session (`sid`) and are refused once it ended: every container checks the session at most
every `cache_seconds`, so an ended session stops working within that time everywhere.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from chalicelib import auth
from chalicelib.domain import SessionRecord, UserRecord
from chalicelib.errors import Unauthorized
from chalicelib.observability import logger, metrics
from chalicelib.storage.accounts import AccountRepository
from chalicelib.storage.sessions import Rotated, SessionRepository

CACHE_SECONDS = 10.0
TICKET_SECONDS = 30
_CACHE_MAX = 10_000

# close_sockets(user_id, sessions, keep): close the user's sockets of those sessions (None: of every session),
# except those of the session `keep`.
SocketCloser = Callable[[str, frozenset[str] | None, str | None], object]


class SessionService:
    """Raises Unauthorized."""

    def __init__(
        self,
        repo: SessionRepository,
        users: AccountRepository,
        token_config: Callable[[], auth.TokenConfig],
        *,
        reuse_grace_seconds: int = 10,
        cache_seconds: float = CACHE_SECONDS,
        close_sockets: SocketCloser | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._users = users
        self._token_config = token_config
        self._grace = reuse_grace_seconds
        self._cache_seconds = cache_seconds
        self._close_sockets = close_sockets
        self._clock = clock
        self._live: dict[str, tuple[float, bool, str]] = {}  # session id -> (checked at, live, user id)
        self._lock = threading.Lock()

    # --- signing in and refreshing -------------------------------------------------------------------------
    def start(self, user: UserRecord) -> dict[str, str]:
        """A new session for `user`: {"access", "refresh"}."""
        config, now = self._token_config(), int(self._clock())
        record = SessionRecord(
            session_id=secrets.token_urlsafe(12),
            user_id=user.id,
            epoch=user.session_epoch,
            refresh_jti=auth.new_token_id(),
            refresh_iat=now,
            expires_at=now + config.refresh_seconds,
        )
        self._repo.create(record)
        return self._tokens(record.user_id, record.session_id, record.refresh_jti, now)

    def refresh(self, refresh_token: str) -> dict[str, str]:
        """New tokens for a refresh token that is its session's current one; the previous one within the grace
        moment answers the current tokens. Any other use ends the session. Raises Unauthorized."""
        claims = auth.verify_token(self._token_config(), refresh_token, "refresh")
        if not claims.session_id or not claims.jti:
            raise Unauthorized("This sign-in is too old; please sign in again.")
        for _ in range(3):
            session = self._live_session(claims)
            now = int(self._clock())
            if claims.jti != session.refresh_jti:
                return self._not_current(session, claims, now)
            new_jti = auth.new_token_id()
            try:
                self._repo.rotate(session.session_id, claims.jti, new_jti, now, now, now + self._refresh_seconds())
            except Rotated:
                continue  # another refresh won the race: judge again on what it left
            return self._tokens(session.user_id, session.session_id, new_jti, now)
        raise Unauthorized("This sign-in is changing; please sign in again.")

    def _not_current(self, session: SessionRecord, claims: auth.Claims, now: int) -> dict[str, str]:
        if claims.jti == session.previous_jti and now - (session.rotated_at or 0) <= self._grace:
            # Two tabs refreshed at once with the same token: the late one gets the current tokens too.
            return self._tokens(session.user_id, session.session_id, session.refresh_jti, session.refresh_iat)
        self.end(session.session_id, session.user_id, reason="refresh token reused")
        metrics.add_metric(name="RefreshTokenReuse", unit="Count", value=1)
        logger.warning("refresh token reused: session ended", extra={"user_id": session.user_id})
        raise Unauthorized("This sign-in was used from somewhere else and has been ended; please sign in again.")

    def _live_session(self, claims: auth.Claims) -> SessionRecord:
        """The claims' session, read fresh. Raises Unauthorized when it ended, expired, or its user changed
        password or is gone."""
        session = self._repo.get(claims.session_id or "", consistent=True)
        if session is None or session.user_id != claims.user_id or session.revoked_at is not None:
            raise Unauthorized("This sign-in has ended; please sign in again.")
        if session.expires_at <= self._clock():
            raise Unauthorized("This sign-in has expired; please sign in again.")
        user = self._users.get(claims.user_id)
        if user is None:
            raise Unauthorized("The account no longer exists.")
        if user.session_epoch != session.epoch:
            raise Unauthorized("The password was changed; please sign in again.")
        return session

    # --- checking access tokens --------------------------------------------------------------------------
    def authenticate(self, access_token: str) -> auth.Claims:
        """The claims of a valid access token whose session is live. Raises Unauthorized."""
        claims = auth.verify_token(self._token_config(), access_token, "access")
        if claims.session_id is None:
            raise Unauthorized("This sign-in is too old; please sign in again.")
        if not self.live(claims.user_id, claims.session_id):
            raise Unauthorized("This sign-in has ended; please sign in again.")
        return claims

    def live(self, user_id: str, session_id: str) -> bool:
        """Whether the session is live, as read at most `cache_seconds` ago in this container."""
        now = self._clock()
        with self._lock:
            cached = self._live.get(session_id)
        if cached is not None and now - cached[0] < self._cache_seconds and cached[2] == user_id:
            return cached[1]
        session = self._repo.get(session_id)
        user = self._users.get(user_id) if session is not None else None
        alive = (
            session is not None
            and user is not None
            and session.user_id == user_id
            and session.revoked_at is None
            and session.expires_at > now
            and session.epoch == user.session_epoch
        )
        with self._lock:
            if len(self._live) >= _CACHE_MAX:
                self._live.clear()
            self._live[session_id] = (now, alive, user_id)
        return alive

    # --- ending sessions ----------------------------------------------------------------------------------
    def end(self, session_id: str, user_id: str, *, reason: str) -> None:
        """Revoke one session and close its sockets."""
        self._repo.revoke(session_id, int(self._clock()))
        with self._lock:
            self._live[session_id] = (self._clock(), False, user_id)
        self._close(user_id, frozenset({session_id}), reason)

    def close_other_sockets(self, user_id: str, keep_session: str | None) -> None:
        """After a password change: forget what this container knew of the user's sessions (they are over) and
        close every socket of the user but those of `keep_session`."""
        with self._lock:
            self._live = {sid: entry for sid, entry in self._live.items() if entry[2] != user_id}
        if self._close_sockets is not None:
            self._close_sockets(user_id, None, keep_session)

    def _close(self, user_id: str, sessions: frozenset[str], reason: str) -> None:
        if self._close_sockets is not None:
            self._close_sockets(user_id, sessions, None)
        logger.info("session ended", extra={"user_id": user_id, "reason": reason})

    # --- WebSocket tickets ------------------------------------------------------------------------------------
    def ws_ticket(self, claims: auth.Claims) -> dict[str, object]:
        """A single-use ticket to open a WebSocket with (never the access token in a URL)."""
        ticket = secrets.token_urlsafe(24)
        self._repo.put_ticket(ticket, claims.user_id, claims.session_id, int(self._clock()) + TICKET_SECONDS)
        return {"ticket": ticket, "expires_in": TICKET_SECONDS}

    def take_ws_ticket(self, ticket: str) -> tuple[str, str | None]:
        """(user, session) of an unused, unexpired ticket, now used. Raises Unauthorized."""
        if not 0 < len(ticket) <= 64:
            raise Unauthorized("The ticket is invalid.")
        taken = self._repo.take_ticket(ticket, int(self._clock()))
        if taken is None:
            raise Unauthorized("The ticket is invalid, used or expired.")
        user_id, session_id = taken
        if session_id is not None and not self.live(user_id, session_id):
            raise Unauthorized("This sign-in has ended; please sign in again.")
        return user_id, session_id

    # --- tokens ----------------------------------------------------------------------------------------------
    def _refresh_seconds(self) -> int:
        return self._token_config().refresh_seconds

    def _tokens(self, user_id: str, session_id: str, refresh_jti: str, refresh_iat: int) -> dict[str, str]:
        config = self._token_config()
        return {
            "access": auth.issue_token(config, user_id, "access", now=self._clock(), session_id=session_id),
            "refresh": auth.issue_token(
                config, user_id, "refresh", now=refresh_iat, session_id=session_id, jti=refresh_jti
            ),
        }
