"""Users, roles, password log-in and API tokens, shared by every service.

Identity has its own small database (`JIESU_IDENTITY_DATABASE_URL`), owned by this
plumbing package rather than by any service. Sessions are signed cookies, so a
service verifies a page request without a database round trip; API tokens are random
secrets stored only as SHA-256 hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, ForeignKey, Integer, MetaData, String, delete, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from jiesu.db import Database, UTCDateTime
from schemas.enums import Role
from schemas.events import utcnow


class IdentityBase(DeclarativeBase):
    metadata = MetaData()


class UserRow(IdentityBase):
    __tablename__ = "identity_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    department: Mapped[str | None] = mapped_column(String(32), nullable=True)  # for role=department
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, nullable=False)


class ApiTokenRow(IdentityBase):
    __tablename__ = "identity_api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at = mapped_column(UTCDateTime, nullable=False)
    last_used_at = mapped_column(UTCDateTime, nullable=True)
    revoked_at = mapped_column(UTCDateTime, nullable=True)


class LoginAttemptRow(IdentityBase):
    """Failed log-ins, for throttling password guessing (kept for the throttle window only)."""

    __tablename__ = "identity_login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at = mapped_column(UTCDateTime, nullable=False, index=True)


THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5  # then the account waits out the window, whatever the address
MAX_FAILURES_PER_ADDRESS = 20  # then the address waits, whatever the user name


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed log-ins; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    department: str | None = None

    def has(self, *roles: Role) -> bool:
        return self.role in roles or self.role == Role.ADMIN


_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: UserRow) -> User:
    return User(row.id, row.username, row.display_name, Role(row.role), row.department)


TOKEN_CACHE_SECONDS = 5.0  # how long a revocation elsewhere may take to be noticed here


class IdentityStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Machine clients send a token with every request: a look-up is shared by the
        # requests that arrive while it runs, and kept for TOKEN_CACHE_SECONDS.
        self._tokens: dict[str, tuple[float, asyncio.Task[User | None]]] = {}

    async def create_user(self, username: str, password: str, role: Role, *, display_name: str = "",
                          department: str | None = None) -> User:
        if role == Role.DEPARTMENT and not department:
            raise ValueError("department staff must be bound to a department")
        if len(password) < 8:
            raise ValueError("password must have at least 8 characters")
        async with self.db.session() as s:
            row = UserRow(username=username, display_name=display_name or username,
                          password_hash=hash_password(password), role=role.value, department=department,
                          active=True, created_at=utcnow())
            s.add(row)
            await s.flush()
            return _user(row)

    async def get_user(self, username: str) -> User | None:
        async with self.db.session() as s:
            row = await s.scalar(select(UserRow).where(UserRow.username == username))
            return _user(row) if row else None

    async def check_throttle(self, username: str, address: str) -> None:
        """Raise LoginThrottled while a user name or an address has failed too often recently."""
        since = utcnow() - THROTTLE_WINDOW
        async with self.db.session() as s:
            await s.execute(delete(LoginAttemptRow).where(LoginAttemptRow.at < since))
            for column, value, limit in ((LoginAttemptRow.username, username, MAX_FAILURES_PER_USER),
                                         (LoginAttemptRow.address, address, MAX_FAILURES_PER_ADDRESS)):
                rows = (await s.execute(select(LoginAttemptRow.at).where(column == value, LoginAttemptRow.at >= since)
                                        .order_by(LoginAttemptRow.at))).scalars().all()
                if len(rows) >= limit:
                    wait = rows[-limit] + THROTTLE_WINDOW - utcnow()
                    raise LoginThrottled(max(1, int(wait.total_seconds())))

    async def record_failure(self, username: str, address: str) -> None:
        async with self.db.session() as s:
            s.add(LoginAttemptRow(username=username[:64], address=address[:64], at=utcnow()))

    async def clear_failures(self, username: str) -> None:
        async with self.db.session() as s:
            await s.execute(delete(LoginAttemptRow).where(LoginAttemptRow.username == username))

    async def authenticate(self, username: str, password: str) -> User | None:
        async with self.db.session() as s:
            row = await s.scalar(select(UserRow).where(UserRow.username == username, UserRow.active.is_(True)))
            if row is None:
                _hasher.hash(password)  # same work either way: no user-enumeration by timing
                return None
            try:
                _hasher.verify(row.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            if _hasher.check_needs_rehash(row.password_hash):
                row.password_hash = hash_password(password)
            return _user(row)

    async def create_token(self, username: str, name: str) -> str:
        token = "jst_" + secrets.token_urlsafe(32)
        async with self.db.session() as s:
            row = await s.scalar(select(UserRow).where(UserRow.username == username))
            if row is None:
                raise LookupError(username)
            s.add(ApiTokenRow(user_id=row.id, name=name, token_hash=token_hash(token), created_at=utcnow()))
        return token

    async def user_for_token(self, token: str) -> User | None:
        """The active user a token belongs to, or None if it is unknown or revoked.

        A look-up is cached for TOKEN_CACHE_SECONDS, so that authentication is not a database
        round trip (and a `last_used_at` write) per request. The price is a revocation lag: a
        token revoked, or a user disabled, by another process or directly in the database still
        works here for up to TOKEN_CACHE_SECONDS. `revoke_token` in this process takes effect at once.
        """
        digest = token_hash(token)
        now = time.monotonic()
        entry = self._tokens.get(digest)
        if entry is None or entry[0] <= now:
            if len(self._tokens) >= 10_000:
                self._tokens.clear()
            entry = self._tokens[digest] = (now + TOKEN_CACHE_SECONDS,
                                            asyncio.create_task(self._look_up_token(digest)))
        try:
            user = await asyncio.shield(entry[1])  # a caller that hangs up does not cancel the others' look-up
        except BaseException:  # a failed or cancelled look-up is not kept
            self._forget_token(digest, entry)
            raise
        if user is None:
            self._forget_token(digest, entry)  # unknown tokens are not kept: anyone can send many
        return user

    async def _look_up_token(self, digest: str) -> User | None:
        async with self.db.session() as s:
            row = await s.scalar(
                select(UserRow).join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id).where(
                    ApiTokenRow.token_hash == digest, ApiTokenRow.revoked_at.is_(None), UserRow.active.is_(True))
            )
            if row is None:
                return None
            await s.execute(update(ApiTokenRow).where(ApiTokenRow.token_hash == digest).values(last_used_at=utcnow()))
            return _user(row)

    def _forget_token(self, digest: str, entry: tuple[float, asyncio.Task[User | None]]) -> None:
        if self._tokens.get(digest) is entry:
            del self._tokens[digest]

    async def revoke_token(self, token: str) -> bool:
        """Revoke a token; True if it was in use. This process refuses it from now on."""
        return await self._revoke(ApiTokenRow.token_hash == token_hash(token)) == 1

    async def revoke_tokens_named(self, username: str, name: str) -> int:
        """Revoke the user's tokens of this name still in use (only hashes are kept: an administrator
        knows a token by its name, not its value); how many. Other processes refuse them once their
        cached look-up expires (TOKEN_CACHE_SECONDS). An unknown user is a LookupError, as for `tokens`."""
        async with self.db.session() as s:
            owner = await s.scalar(select(UserRow.id).where(UserRow.username == username))
        if owner is None:
            raise LookupError(username)
        return await self._revoke(ApiTokenRow.user_id == owner, ApiTokenRow.name == name)

    async def _revoke(self, *where) -> int:
        async with self.db.session() as s:
            digests = (await s.scalars(update(ApiTokenRow).where(*where, ApiTokenRow.revoked_at.is_(None))
                                       .values(revoked_at=utcnow()).returning(ApiTokenRow.token_hash))).all()
        for digest in digests:
            self._tokens.pop(digest, None)
        return len(digests)

    async def tokens(self, username: str) -> list[ApiTokenRow]:
        """The user's API tokens, newest first (their names and dates: the tokens themselves are not kept)."""
        async with self.db.session() as s:
            user_id = await s.scalar(select(UserRow.id).where(UserRow.username == username))
            if user_id is None:
                raise LookupError(username)
            return list((await s.scalars(select(ApiTokenRow).where(ApiTokenRow.user_id == user_id)
                                         .order_by(ApiTokenRow.id.desc()))).all())

    async def display_names(self, usernames) -> dict[str, str]:
        """username → display name for those of `usernames` that exist, in one query (pages naming who acted)."""
        wanted = sorted(set(usernames))
        if not wanted:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(UserRow.username, UserRow.display_name)
                                    .where(UserRow.username.in_(wanted)))).all()
        return {username: name for username, name in rows if name}

    async def list_users(self) -> list[User]:
        async with self.db.session() as s:
            return [_user(r) for r in (await s.scalars(select(UserRow).order_by(UserRow.id))).all()]


def load_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, or one generated once into the data directory (0600)."""
    if configured:
        return configured
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret
