"""Loading the demo dataset and issuing the demo sign-in tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.assets import insert_assets
from enablement.db.crm import upsert_deals, upsert_owners, upsert_pipelines
from enablement.db.models import Asset, Deal, LinkView, Owner
from enablement.db.types import utcnow
from enablement.domain.assets import FIELDS, validate_asset
from enablement.errors import Conflict
from enablement.services import tokens
from enablement.services.assets import new_row
from enablement.services.shares import NewShare, store_shares

if TYPE_CHECKING:
    from enablement.demo.dataset import DemoData

BATCH = 500
DEMO_TOKEN_NAMES: dict[str, str] = {
    "sales": "demo sales",
    "marketing": "demo marketing",
    "admin": "demo admin",
}
_BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"


@dataclass
class DemoLoad:
    """What a demo load did: loaded or skipped, the counts, and how long it took (seconds)."""

    loaded: bool
    existing_deals: int = 0
    existing_assets: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    as_of: date | None = None


@dataclass(frozen=True)
class DemoToken:
    """A freshly issued demo token (the plain token is shown once)."""

    role: str
    name: str
    token: str
    owner_id: str | None = None
    owner_name: str | None = None


def count_existing(session: Session) -> tuple[int, int]:
    """How many deals and assets the database holds."""
    deals = session.scalar(select(func.count()).select_from(Deal)) or 0
    assets = session.scalar(select(func.count()).select_from(Asset)) or 0
    return deals, assets


def load_demo(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    deals: int = 2000,
    assets: int = 300,
    seed: int = 42,
    today: date | None = None,
    if_empty: bool = False,
) -> DemoLoad:
    """Generate the demo dataset as of `today` (UTC, default the current day) and store it.

    Loads only into a database without deals and assets: with `if_empty` a non-empty
    database is left alone (loaded=False); without it, that is a Conflict.
    """
    # NOTE: imported here: the generator's modules are only needed when the demo loads, and
    # every CLI command and the web app would pay for them at start-up.
    from enablement.demo.dataset import generate_demo, summary_counts

    started = time.perf_counter()
    today = today or utcnow().date()
    with sessions.begin() as session:
        existing_deals, existing_assets = count_existing(session)
        if existing_deals or existing_assets:
            if if_empty:
                return DemoLoad(False, existing_deals, existing_assets, as_of=today)
            raise Conflict(
                "the demo loads into an empty database only; this one has "
                f"{existing_deals} deals and {existing_assets} assets",
                {"hint": "remove instance/enablement.db (SQLite) and run `enablement init` first"},
            )
        data = generate_demo(
            datetime(today.year, today.month, today.day, tzinfo=UTC),
            seed=seed,
            deals=deals,
            assets=assets,
        )
        _store(session, settings, data)
    return DemoLoad(
        True,
        counts=summary_counts(data),
        seconds=round(time.perf_counter() - started, 2),
        as_of=today,
    )


def _store(session: Session, settings: Settings, data: DemoData) -> None:
    """Write pipelines, owners, deals (batched), assets with tags, shares with links, and views.

    Assets and shares go through the same rules as every other path: the asset record's
    validation and the one share rule, so every demo link works.
    """
    upsert_pipelines(session, data.pipelines, mapped_by=None)
    upsert_owners(session, data.owners)
    session.flush()
    for start in range(0, len(data.deals), BATCH):
        upsert_deals(session, data.deals[start : start + BATCH], source="demo")
    terms = tuple(dict.fromkeys((*settings.product_terms, *data.product_names)))
    rows = []
    for a in data.assets:
        values, errors = validate_asset({field: getattr(a, field) for field in FIELDS})
        if errors:
            raise ValueError(f"demo asset {a.id} breaks the asset rules: {errors}")
        row = new_row(values, terms)
        row["retired_at"] = a.retired_at
        rows.append(row)
    insert_assets(session, rows)
    for start in range(0, len(data.shares), BATCH * 4):
        chunk = data.shares[start : start + BATCH * 4]
        ids = store_shares(
            session,
            settings,
            [
                # NOTE: a demo share is made by its rep: that owner's tokens list it as theirs.
                NewShare(
                    s.deal_id,
                    s.asset_id,
                    s.shared_at,
                    s.shared_by,
                    s.channel,
                    actor=tokens.owner_actor(s.shared_by),
                )
                for s in chunk
            ],
            "demo",
        )
        views = [
            {"share_id": share_id, "viewed_at": at, "user_agent": _BROWSER}
            for share_id, s in zip(ids, chunk, strict=True)
            for at in s.viewed_at
        ]
        if views:
            session.execute(insert(LinkView), views)


def issue_demo_tokens(sessions: sessionmaker[Session]) -> list[DemoToken]:
    """Revoke earlier demo tokens and create one per role; the sales token belongs to a demo rep."""
    owner_id, owner_name = _demo_rep(sessions)
    issued = []
    for role, name in DEMO_TOKEN_NAMES.items():
        tokens.revoke_tokens_named(sessions, name)
        rep = owner_id if role == "sales" else None
        token, _ = tokens.create_token(sessions, role, name, rep)
        issued.append(DemoToken(role, name, token, rep, owner_name if rep else None))
    return issued


def _demo_rep(sessions: sessionmaker[Session]) -> tuple[str | None, str | None]:
    """The first demo rep when present, else the first owner, else none."""
    from enablement.demo.world import REPS

    with sessions() as session:
        owner = (
            session.get(Owner, REPS[0].id)
            or session.scalars(select(Owner).order_by(Owner.id).limit(1)).first()
        )
        return (owner.id, owner.display_name) if owner else (None, None)
