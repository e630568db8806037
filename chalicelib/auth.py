"""Password hashing (scrypt, per-user salt, constant-time check) and JWT issue / verify."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import NamedTuple

from chalicelib.errors import Unauthorized

ALGORITHM = "HS256"  # pinned: never taken from the token header
# PyJWT is imported where a token is made or read, not with this module: with `cryptography` in the package (the
# e-tickets' Ed25519) `import jwt` loads it too (~50 ms), which a handler that never reads a token must not pay
# at its cold start (infra/README.md, "Cold start").
_TOKEN = re.compile(r"[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]*")
_SCRYPT_R = 8
_SCRYPT_P = 1
_DKLEN = 32


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, *, n: int = 2**14) -> str:
    """scrypt with a fresh 16-byte salt; the cost is stored with the hash so it can change later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_DKLEN, maxmem=_maxmem(n, _SCRYPT_R)
    )
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _maxmem(n: int, r: int) -> int:
    """What scrypt needs for this cost (128 * r * n bytes) with room to spare: a fixed cap made raising N refuse
    every password, old and new (OpenSSL's default cap is 32 MiB, N=2^15 at r=8)."""
    return 2 * 128 * r * n + 2**20


def verify_password(password: str, stored: str) -> bool:
    """True when password matches the stored hash; compares in constant time."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=_maxmem(int(n), int(r)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash of a random password, so a login for an unknown email costs as much as a real one
# (no timing oracle for which emails exist).
def dummy_hash(n: int) -> str:
    return hash_password(secrets.token_urlsafe(12), n=n)


class TokenConfig(NamedTuple):
    secret: str
    issuer: str
    audience: str
    access_seconds: int
    refresh_seconds: int


class Claims(NamedTuple):
    user_id: str
    token_type: str
    expires_at: int
    session_id: str | None = None  # `sid`: the sign-in the token belongs to (tokens from before sessions lack it)
    jti: str | None = None
    issued_at: int = 0


def new_token_id() -> str:
    return secrets.token_hex(8)


def issue_token(
    config: TokenConfig,
    user_id: str,
    token_type: str,
    *,
    now: float | None = None,
    session_id: str | None = None,
    jti: str | None = None,
) -> str:
    """A signed token. The same arguments (jti and now included) always give the same token."""
    now = int(time.time() if now is None else now)
    lifetime = config.access_seconds if token_type == "access" else config.refresh_seconds
    payload = {
        "sub": user_id,
        "iat": now,
        "exp": now + lifetime,
        "iss": config.issuer,
        "aud": config.audience,
        "typ": token_type,
        "jti": jti or new_token_id(),
    }
    if session_id:
        payload["sid"] = session_id
    import jwt  # lazily: see the note at ALGORITHM

    return jwt.encode(payload, config.secret, algorithm=ALGORITHM)


def verify_token(config: TokenConfig, token: str, expected_type: str) -> Claims:
    """Decode and check signature, exp, iss, aud and typ. Raises Unauthorized."""
    if not _TOKEN.fullmatch(token):
        # A JWT is base64url and dots. Anything else (a header's undecodable bytes arrive as surrogates, which
        # pyjwt cannot even encode) is refused here, as a 401, never a 500.
        raise Unauthorized("The token is invalid.")
    import jwt  # lazily: see the note at ALGORITHM

    try:
        payload = jwt.decode(
            token,
            config.secret,
            algorithms=[ALGORITHM],
            audience=config.audience,
            issuer=config.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is invalid.") from exc
    if payload.get("typ") != expected_type:
        article = "An" if expected_type[:1] in "aeiou" else "A"
        raise Unauthorized(f"{article} {expected_type} token is required.")
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("The token is invalid.")
    sid, jti = payload.get("sid"), payload.get("jti")
    return Claims(
        user_id=sub,
        token_type=expected_type,
        expires_at=int(payload["exp"]),
        session_id=sid if isinstance(sid, str) and sid else None,
        jti=jti if isinstance(jti, str) and jti else None,
        issued_at=int(payload["iat"]),
    )


def bearer_token(authorization: str | None) -> str:
    """Extract the token from an Authorization header. Raises Unauthorized."""
    if not authorization:
        raise Unauthorized("Send Authorization: Bearer <access token>.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send Authorization: Bearer <access token>.")
    return token.strip()
