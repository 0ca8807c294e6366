"""Per-device API tokens for the ingest API.

A token is shown once, when created; the store keeps only its sha256. A token
can write only runs whose device name equals the token's device. Tokens are
long random strings (``secrets.token_urlsafe(32)``, 256 bits), so a plain
sha256 is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from pydantic import BaseModel
from sqlalchemy import insert, select, update

from wattbench.results_db.errors import TokenError
from wattbench.results_db.schema import ApiToken
from wattbench.results_db.store import Store

TOKEN_PREFIX = "wbt_"
MAX_DEVICE_NAME = 200


class TokenInfo(BaseModel):
    """A stored token, without the secret: ``fingerprint`` is the hash's first 12 hex digits."""

    id: int
    device: str
    fingerprint: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenCheck(BaseModel):
    """The outcome of checking a presented token: the device, or why it was refused."""

    device: str | None
    reason: str | None = None


def hash_token(token: str) -> str:
    """The sha256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, device: str) -> str:
    """Create a token for ``device`` and return it; only its hash is stored."""
    device = device.strip()
    if not device or len(device) > MAX_DEVICE_NAME:
        raise TokenError(
            f"invalid --device {device!r}: give the device's name (1-{MAX_DEVICE_NAME} "
            f"characters), the one its runs carry (`wattbench run --device-name`)"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.engine.begin() as conn:
        conn.execute(
            insert(ApiToken).values(
                device_name=device,
                token_sha256=hash_token(token),
                created_at=datetime.now(timezone.utc),
                revoked_at=None,
            )
        )
    return token


def list_tokens(store: Store, device: str | None = None) -> list[TokenInfo]:
    """Stored tokens (active and revoked), oldest first."""
    q = select(ApiToken).order_by(ApiToken.id)
    if device is not None:
        q = q.where(ApiToken.device_name == device)
    with store.engine.connect() as conn:
        return [
            TokenInfo(
                id=row.id,
                device=row.device_name,
                fingerprint=row.token_sha256[:12],
                created_at=row.created_at,
                revoked_at=row.revoked_at,
            )
            for row in conn.execute(q)
        ]


def revoke_tokens(store: Store, *, token_id: int | None = None, device: str | None = None) -> int:
    """Revoke one token by id, or every active token of ``device``; returns how many."""
    if (token_id is None) == (device is None):
        raise TokenError("give a token ID or --device NAME (see `wattbench token list`)")
    q = update(ApiToken).where(ApiToken.revoked_at.is_(None))
    q = q.where(ApiToken.id == token_id) if token_id is not None else q
    q = q.where(ApiToken.device_name == device) if device is not None else q
    with store.engine.begin() as conn:
        n = conn.execute(q.values(revoked_at=datetime.now(timezone.utc))).rowcount
    if n == 0:
        what = f"token {token_id}" if token_id is not None else f"device {device!r}"
        raise TokenError(f"no active token for {what}: see `wattbench token list`")
    return int(n)


def check_token(store: Store, token: str) -> TokenCheck:
    """The device that ``token`` may write for, or the reason it may not."""
    q = select(ApiToken.device_name, ApiToken.revoked_at).where(
        ApiToken.token_sha256 == hash_token(token)
    )
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return TokenCheck(device=None, reason="unknown token")
    if row.revoked_at is not None:
        return TokenCheck(device=None, reason="token revoked")
    return TokenCheck(device=row.device_name)
