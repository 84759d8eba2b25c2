"""API tokens: created once and shown once, stored as SHA-256, checked per request."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from enablement.db import reading
from enablement.db.models import ApiToken, WebSession
from enablement.db.types import utcnow
from enablement.domain.numbers import MAX_ROW_ID, read_id
from enablement.errors import Forbidden, InvalidInput, NotFound, Unauthenticated

ROLES: tuple[str, ...] = ("sales", "marketing", "admin")
TOKEN_PREFIX = "enb_"  # noqa: S105 - a marker, not a secret
LAST_USED_GRANULARITY = timedelta(minutes=5)
# "enb_" and 4 random characters: enough to tell one's tokens apart, far too little to guess.
SHOWN_PREFIX = 8


def owner_actor(owner_id: str) -> str:
    """The actor of a CRM owner: every token bound to the owner, and the owner on the app card."""
    return f"owner:{owner_id}"


def token_actor(token_id: int) -> str:
    """The actor of one token not bound to an owner: that token alone."""
    return f"token:{token_id}"


def cli_actor(user: str | None) -> str:
    """The actor of a command run by an operating-system user (or by an unknown one)."""
    return f"cli:{user}" if user else "cli"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name, role and (for sales) CRM owner id."""

    token_id: int
    name: str
    role: str
    owner_id: str | None = None

    def has_role(self, role: str) -> bool:
        """True when this principal's role is at least `role` (sales < marketing < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def actor(self) -> str:
        """Who is asking, as stored with shares and impressions ("mine", the repeat window).

        NOTE: token names are not unique and may look like owner ids, so identity is never the
        name: it is the owner for a token bound to one, else the token itself. Each kind has
        its own prefix (owner:, token:, cli:), so no two kinds can ever spell the same actor.
        """
        return owner_actor(self.owner_id) if self.owner_id else token_actor(self.token_id)

    @property
    def owner_scope(self) -> str | None:
        """The CRM owner whose deals alone this caller reaches: a sales token's owner, else None (all).

        Decided here for every deal route (list, show, shares, recommendations); services apply
        it through services.deals.reaches.
        """
        return self.owner_id if self.role == "sales" and self.owner_id else None

    @property
    def shown_as(self) -> str:
        """Who is asking, as people read it on a share (shared_by): the owner id, else the name."""
        return self.owner_id or self.name


def hash_token(token: str) -> str:
    """SHA-256 hex of a token; tokens are long and random, so no salt or KDF is needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    sessions: sessionmaker[Session], role: str, name: str, owner_id: str | None = None
) -> tuple[str, ApiToken]:
    """Create a token; returns the plain token (shown once) and its stored record."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    name = (name or "").strip()
    if not name or len(name) > 255:
        raise InvalidInput("a token needs a name of 1 to 255 characters")
    owner_id = (owner_id or "").strip() or None
    if owner_id is not None and len(owner_id) > 64:
        raise InvalidInput("an owner id has at most 64 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        name=name,
        role=role,
        owner_id=owner_id,
        token_hash=hash_token(token),
        prefix=shown_prefix(token),
    )
    with sessions.begin() as session:
        session.add(record)
    return token, record


def shown_prefix(token_or_prefix: str | None) -> str | None:
    """The part of a token that lists may show (older records stored a longer prefix)."""
    return None if token_or_prefix is None else token_or_prefix[:SHOWN_PREFIX]


def authenticate(
    sessions: sessionmaker[Session],
    header: str | None,
    later: Callable[[Callable[[], None]], None] | None = None,
) -> Principal:
    """Turn an Authorization header into a Principal or raise Unauthenticated.

    `later` (the web layer's after-the-answer hook) runs the occasional last_used_at touch once
    the answer is sent, so no request waits for that write; without it the touch runs now.
    """
    if not header:
        raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    digest = hash_token(token)
    # NOTE: a read-only session (on SQLite it neither takes nor waits for the write lock); the
    # rare touch of last_used_at is a transaction of its own.
    with reading(sessions) as session:
        record = session.execute(_ACTIVE_BY_HASH, {"digest": digest}).first()
    # The index lookup already matched; compare again in constant time as a belt-and-braces.
    if record is None or not hmac.compare_digest(record.token_hash, digest):
        raise Unauthenticated("unknown or revoked token")
    now = utcnow()
    # NOTE: touch last_used_at at most every few minutes, so reads do not become writes.
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_GRANULARITY:
        touch = functools.partial(_touch, sessions, record.id, now)
        if later is None:
            touch()
        else:
            later(touch)
    return Principal(record.id, record.name, record.role, record.owner_id)


def _touch(sessions: sessionmaker[Session], token_id: int, now) -> None:
    """Record a token's use (at most every LAST_USED_GRANULARITY)."""
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            # NOTE: a lost last_used_at (a PostgreSQL crash in the next moments) is harmless:
            # the touch does not wait for its WAL flush.
            session.execute(text("SET LOCAL synchronous_commit = off"))
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


# NOTE: every API request runs this; one Core statement built once (its SQL compiled once and
# cached) costs a fraction of an ORM query built anew each time.
_TOKENS = ApiToken.__table__
_ACTIVE_BY_HASH = select(
    _TOKENS.c.id,
    _TOKENS.c.name,
    _TOKENS.c.role,
    _TOKENS.c.owner_id,
    _TOKENS.c.token_hash,
    _TOKENS.c.last_used_at,
).where(_TOKENS.c.token_hash == bindparam("digest"), _TOKENS.c.revoked_at.is_(None))


def require_role(principal: Principal, role: str) -> None:
    """Raise Forbidden unless the principal has at least `role`."""
    if not principal.has_role(role):
        raise Forbidden(f"this needs the {role} role; your token has {principal.role}")


def list_tokens(sessions: sessionmaker[Session]) -> list[ApiToken]:
    """Every token record (never the tokens themselves)."""
    with sessions() as session:
        return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(sessions: sessionmaker[Session], token_id: int) -> ApiToken:
    """Revoke a token by id; unknown ids (also ones no row can have) are NotFound."""
    try:
        read_id(token_id, MAX_ROW_ID)
    except ValueError:
        raise NotFound(f"no token with id {token_id}") from None
    with sessions.begin() as session:
        record = session.get(ApiToken, token_id)
        if record is None:
            raise NotFound(f"no token with id {token_id}")
        record.revoked_at = record.revoked_at or utcnow()
        session.execute(delete(WebSession).where(WebSession.token_id == token_id))
        return record


def revoke_tokens_named(sessions: sessionmaker[Session], name: str) -> int:
    """Revoke every active token with exactly this name; returns how many were revoked."""
    with sessions.begin() as session:
        named = select(ApiToken.id).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        session.execute(delete(WebSession).where(WebSession.token_id.in_(named)))
        result = session.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return result.rowcount


# A browser session lasts until sign-out, the token's revocation, or this long at most.
WEB_SESSION_LIFETIME = timedelta(days=30)


def start_web_session(sessions: sessionmaker[Session], token_id: int) -> str:
    """Open a server-side browser session for a token; returns its id (for the signed cookie).

    Only its SHA-256 is stored. Expired sessions of the same token are cleared on the way.
    """
    session_id = secrets.token_urlsafe(32)
    with sessions.begin() as session:
        session.execute(
            delete(WebSession).where(
                WebSession.token_id == token_id,
                WebSession.created_at < utcnow() - WEB_SESSION_LIFETIME,
            )
        )
        session.add(WebSession(id_hash=hash_token(session_id), token_id=token_id))
    return session_id


def web_session_principal(sessions: sessionmaker[Session], session_id: object) -> Principal | None:
    """The principal of a live browser session, or None (unknown, signed out, expired, revoked)."""
    if not isinstance(session_id, str) or not 0 < len(session_id) <= 100:
        return None
    with reading(sessions) as session:
        record = session.execute(
            select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.owner_id)
            .join(WebSession, WebSession.token_id == ApiToken.id)
            .where(
                WebSession.id_hash == hash_token(session_id),
                WebSession.created_at >= utcnow() - WEB_SESSION_LIFETIME,
                ApiToken.revoked_at.is_(None),
            )
        ).first()
    return None if record is None else Principal(*record)


def end_web_session(sessions: sessionmaker[Session], session_id: object) -> None:
    """End a browser session on the server: its cookie, wherever copied, stops working."""
    if isinstance(session_id, str) and 0 < len(session_id) <= 100:
        with sessions.begin() as session:
            session.execute(delete(WebSession).where(WebSession.id_hash == hash_token(session_id)))


def prune_web_sessions(sessions: sessionmaker[Session]) -> int:
    """Forget every browser session older than its lifetime (the scheduler's pass); how many."""
    with sessions.begin() as session:
        gone = session.execute(
            delete(WebSession).where(WebSession.created_at < utcnow() - WEB_SESSION_LIFETIME)
        )
    return gone.rowcount
