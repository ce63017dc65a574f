"""API keys: roles, stored as SHA-256 digests; the secret is shown once at creation."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from .models import ApiKeyRow

ROLES = ("storefront", "finance", "auditor", "admin")
PREFIX = "lsk_"
log = logging.getLogger(__name__)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create(session: Session, role: str, name: str = "") -> tuple[str, str]:
    """A new key for `role`: returns (key id, secret). Only the digest is stored."""
    if role not in ROLES:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    session.add(ApiKeyRow(id=key_id, name=name or role, role=role, key_hash=digest(secret),
                          created=_utcnow(), revoked=None))
    log.info("api key created: %s (%s)", key_id, role,  # the id and role, never the secret
             extra={"fields": {"event": "key.created", "key_id": key_id, "role": role}})
    return key_id, secret


def role_of(session: Session, secret: str) -> str | None:
    """The role of a live key, or None for an unknown or revoked one."""
    found = identify(session, secret)
    return found[1] if found else None


def identify(session: Session, secret: str) -> tuple[str, str] | None:
    """(key id, role) of a live key, or None for an unknown or revoked one."""
    found = lookup(session.connection(), secret)
    return (found[0], found[1]) if found else None


_TABLE = ApiKeyRow.__table__
_BY_HASH = select(_TABLE.c.id, _TABLE.c.role, _TABLE.c.revoked, _TABLE.c.last_used).where(
    _TABLE.c.key_hash == bindparam("key_hash"))


def lookup(connection: Connection, secret: str) -> tuple[str, str, datetime | None] | None:
    """(key id, role, last used) of a live key, or None for an unknown or revoked one: one read on
    a plain connection (the API asks it on every request)."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    row = connection.execute(_BY_HASH, {"key_hash": digest(secret)}).first()
    if row is None or row.revoked is not None:
        return None
    return row.id, row.role, row.last_used


def used_today(last_used: datetime | None) -> bool:
    """Whether a key's last use (UTC) is today already: `touch` would write nothing."""
    return last_used is not None and last_used.date() >= _utcnow().date()


def listing(session: Session) -> list[ApiKeyRow]:
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created)))


def touch(session: Session, key_id: str) -> bool:
    """Record that the key was used today (the API calls it after a key is accepted): written at
    most once a day per key, so a busy client costs one read, not a write, per request.
    True when the row was written (the caller commits)."""
    last = session.connection().execute(select(_TABLE.c.last_used).where(_TABLE.c.id == key_id)).scalar()
    if used_today(last):
        return False
    session.connection().execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used=_utcnow()))
    return True


def live_named(session: Session, name: str) -> list[str]:
    """The ids of the live keys of this name (the demo platform revokes its earlier keys)."""
    return list(session.scalars(select(ApiKeyRow.id).where(ApiKeyRow.name == name, ApiKeyRow.revoked.is_(None))))


def revoke(session: Session, key_id: str) -> bool:
    row = session.get(ApiKeyRow, key_id)
    if row is None or row.revoked is not None:
        return False
    row.revoked = _utcnow()
    log.info("api key revoked: %s (%s)", key_id, row.role,
             extra={"fields": {"event": "key.revoked", "key_id": key_id, "role": row.role}})
    return True


def _utcnow() -> datetime:
    """Naive UTC now, as stored in the database's DateTime columns."""
    return datetime.now(UTC).replace(tzinfo=None)
