"""Web credentials, API tokens, signed session cookies, CSRF tokens and login rate limiting.

Passwords are hashed with Argon2id (argon2-cffi).  Credentials and API token digests live in the
``web_credentials`` / ``web_api_tokens`` tables beside the store's ``users`` table (created on
first use; the user row itself, with its role, is the store's).  Sessions are HMAC-signed cookies
(HttpOnly, SameSite=Strict, Secure unless ``secure_cookies=False`` for plain-HTTP development).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import DateTime, Engine, MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

ROLES = ("reviewer", "supervisor", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("etle-dummy-password")


class _Base(DeclarativeBase):
    metadata = MetaData()


class WebCredential(_Base):
    __tablename__ = "web_credentials"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebApiToken(_Base):
    __tablename__ = "web_api_tokens"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def ensure_tables(engine: Engine) -> None:
    _Base.metadata.create_all(engine, checkfirst=True)


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    return _hasher.hash(password)


def set_password(engine: Engine, username: str, password: str) -> None:
    ensure_tables(engine)
    digest = hash_password(password)
    with Session(engine) as s, s.begin():
        row = s.get(WebCredential, username)
        if row is None:
            s.add(WebCredential(username=username, password_hash=digest, updated_at=datetime.now(timezone.utc)))
        else:
            row.password_hash = digest
            row.updated_at = datetime.now(timezone.utc)


def check_password(engine: Engine, username: str, password: str) -> bool:
    with Session(engine) as s:
        row = s.get(WebCredential, username)
        stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        ok = _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    return ok and row is not None


def new_api_token(engine: Engine, username: str, label: str = "") -> str:
    ensure_tables(engine)
    token = "etle_" + secrets.token_urlsafe(32)
    with Session(engine) as s, s.begin():
        s.add(WebApiToken(digest=hashlib.sha256(token.encode()).hexdigest(), username=username, label=label,
                          created_at=datetime.now(timezone.utc)))
    return token


def token_user(engine: Engine, token: str) -> str | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with Session(engine) as s:
        row = s.scalars(select(WebApiToken).where(WebApiToken.digest == digest)).one_or_none()
        return row.username if row is not None else None


# -- signed session cookies ---------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SessionData:
    username: str
    csrf: str
    expires: float
    lang: str = "id"


class SessionSigner:
    def __init__(self, secret: bytes, max_age_s: int = 8 * 3600) -> None:
        self.secret = secret
        self.max_age_s = max_age_s

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())

    def dump(self, username: str, lang: str = "id") -> tuple[str, SessionData]:
        data = SessionData(username, secrets.token_urlsafe(32), time.time() + self.max_age_s, lang)
        body = _b64(json.dumps({"u": data.username, "c": data.csrf, "e": data.expires, "l": lang}).encode())
        return f"{body}.{self._mac(body)}", data

    def load(self, cookie: str | None) -> SessionData | None:
        if not cookie or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            raw = json.loads(_unb64(body))
            data = SessionData(str(raw["u"]), str(raw["c"]), float(raw["e"]), str(raw.get("l", "id")))
        except (ValueError, KeyError, TypeError):
            return None
        return data if data.expires > time.time() else None


class RateLimiter:
    """At most ``limit`` failures per key within ``window_s`` seconds."""

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        cutoff = time.monotonic() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> bool:
        with self._lock:
            return any(len(self._recent(k)) >= self.limit for k in keys)

    def fail(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._recent(k).append(time.monotonic())

    def reset(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)
