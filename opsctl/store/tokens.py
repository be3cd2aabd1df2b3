"""The server's API tokens: created once and shown once, kept only as a SHA-256 hash.

A token is ``opsctl_`` followed by 43 URL-safe characters (256 random bits). It is scoped
to one agent (``agent``: may push that agent's metrics) or one vendor (``vendor``: may write
that vendor's dispenser heartbeats), optionally bound to a site.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from opsctl.contract import utc_now
from opsctl.store.api import Store
from opsctl.store.models import TokenModel

PREFIX = "opsctl_"
SCOPES = ("agent", "vendor")
_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A stored token, without its secret."""

    id: int
    prefix: str
    scope: str
    subject: str
    site: str | None
    note: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked is None


def hash_token(token: str) -> str:
    """Given a token as presented, return the hex SHA-256 the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    store: Store, scope: str, subject: str, *, site: str | None = None, note: str = ""
) -> tuple[str, TokenRow]:
    """Given a scope (``agent`` or ``vendor``) and the agent's or vendor's name, create a
    token; return the plain token (shown once, never stored) and its row.

    Raise ValueError for an unknown scope or a name that is not ``[A-Za-z0-9][A-Za-z0-9_.:-]*``
    (at most 64 characters), StoreError if the database fails.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not _SUBJECT.match(subject):
        raise ValueError(
            f"{scope} name {subject!r} must be 1-64 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    model = TokenModel(
        token_hash=hash_token(token),
        prefix=token[: len(PREFIX) + 6],
        scope=scope,
        subject=subject,
        site=site,
        note=note,
        created=utc_now(),
        last_used=None,
        revoked=None,
    )
    with store._guard("create a token"), store._sessions.begin() as session:
        session.add(model)
        session.flush()
        row = _row(model)
    return token, row


def list_tokens(store: Store, *, include_revoked: bool = False) -> list[TokenRow]:
    """Return the stored tokens (without secrets), oldest first."""
    statement = select(TokenModel).order_by(TokenModel.id)
    if not include_revoked:
        statement = statement.where(TokenModel.revoked.is_(None))
    with store._guard("list tokens"), store._sessions() as session:
        return [_row(model) for model in session.scalars(statement)]


def revoke_token(store: Store, ident: str) -> list[TokenRow]:
    """Given a token id, its shown prefix, or ``agent:NAME`` / ``vendor:NAME``, revoke the
    matching active tokens; return them (empty when nothing matched)."""
    statement = select(TokenModel).where(TokenModel.revoked.is_(None))
    scope, _, name = ident.partition(":")
    if ident.isdigit():
        statement = statement.where(TokenModel.id == int(ident))
    elif scope in SCOPES and name:
        statement = statement.where(TokenModel.scope == scope, TokenModel.subject == name)
    else:
        statement = statement.where(TokenModel.prefix == ident)
    now = utc_now()
    with store._guard("revoke a token"), store._sessions.begin() as session:
        models = list(session.scalars(statement))
        for model in models:
            model.revoked = now
        session.flush()
        return [_row(model) for model in models]


def authenticate(store: Store, token: str, *, touch: bool = True) -> TokenRow | None:
    """Given a presented token, return its row if it is known and not revoked, else None.
    With ``touch``, record the time it was used (at most once a minute per token)."""
    if not token.startswith(PREFIX) or len(token) > 128:
        return None
    digest = hash_token(token)
    with store._guard("check a token"), store._sessions() as session:
        model = session.scalars(
            select(TokenModel).where(TokenModel.token_hash == digest)
        ).one_or_none()
        if model is None or model.revoked is not None:
            return None
        row = _row(model)
    now = utc_now()
    if touch and (row.last_used is None or (now - row.last_used).total_seconds() > 60):
        with store._guard("record token use"), store._sessions.begin() as session:
            session.execute(update(TokenModel).where(TokenModel.id == row.id).values(last_used=now))
    return row


def _row(model: TokenModel) -> TokenRow:
    return TokenRow(
        id=model.id,
        prefix=model.prefix,
        scope=model.scope,
        subject=model.subject,
        site=model.site,
        note=model.note,
        created=model.created,
        last_used=model.last_used,
        revoked=model.revoked,
    )
