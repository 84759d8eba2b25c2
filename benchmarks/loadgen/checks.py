"""After the run: is every acknowledged write in the database exactly once?"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from loadgen.clients import CHANNEL, KEYLESS, Journal
from loadgen.windows import Window, overlaps


@dataclass
class Durability:
    """What the database holds against what the clients were told."""

    acknowledged_shares: int = 0
    missing_shares: list[int] = field(default_factory=list)
    unacknowledged_shares: int = 0  # stored, but the client got no 200/201 (e.g. no answer)
    keyed_intents: int = 0
    keyed_doubles: int = 0  # extra shares made for one Idempotency-Key
    keyless_intents: int = 0
    keyless_doubles: int = 0  # extra shares made by one keyless double-click
    redirects: int = 0
    views: int = 0
    missing_views: int = 0
    missing_views_outside: int = 0  # on links never clicked inside an outage window
    extra_views: int = 0  # recorded without a redirect answered (e.g. no answer)

    @property
    def failures(self) -> list[str]:
        """Why the durability target fails (empty when it holds)."""
        out = []
        if self.missing_shares:
            out.append(
                f"{len(self.missing_shares)} acknowledged share(s) missing from the database"
            )
        if self.keyed_doubles:
            out.append(f"{self.keyed_doubles} doubled share(s) for a repeated Idempotency-Key")
        if self.keyless_doubles:
            out.append(f"{self.keyless_doubles} doubled share(s) from keyless double-clicks")
        if self.missing_views_outside:
            out.append(f"{self.missing_views_outside} redirected click(s) without a recorded view")
        return out


def _stored_shares(database_url: str) -> tuple[set[int], dict[int, int]]:
    """Ids of the run's shares (its channel) and the view count of each."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ids = set(
                conn.execute(
                    text("SELECT id FROM shares WHERE channel = :c"), {"c": CHANNEL}
                ).scalars()
            )
            views = dict(
                conn.execute(
                    text(
                        "SELECT v.share_id, count(*) FROM link_views v "
                        "JOIN shares s ON s.id = v.share_id WHERE s.channel = :c "
                        "GROUP BY v.share_id"
                    ),
                    {"c": CHANNEL},
                ).all()
            )
    finally:
        engine.dispose()
    return ids, views


def check_durability(database_url: str, journal: Journal, outage: Window | None) -> Durability:
    """Compare acknowledged shares and redirects with the rows in the database."""
    stored, views = _stored_shares(database_url)
    result = Durability()
    acknowledged = {a.share_id for a in journal.shares if a.share_id is not None}
    result.acknowledged_shares = len(acknowledged)
    result.missing_shares = sorted(acknowledged - stored)
    result.unacknowledged_shares = len(stored - acknowledged)
    _count_doubles(journal, result)
    _count_views(journal, views, outage, result)
    return result


def _count_doubles(journal: Journal, result: Durability) -> None:
    """Per double-click (2+ posts of one intent), every distinct share id beyond the first is a double."""
    attempts: Counter[str] = Counter(a.key for a in journal.shares)
    ids_by_key: dict[str, set[int]] = defaultdict(set)
    for attempt in journal.shares:
        if attempt.share_id is not None:
            ids_by_key[attempt.key].add(attempt.share_id)
    for key, posts in attempts.items():
        if posts < 2:
            continue  # a single post (the seed shares) cannot double
        extra = max(0, len(ids_by_key[key]) - 1)
        if key.startswith(KEYLESS):
            result.keyless_intents += 1
            result.keyless_doubles += extra
        else:
            result.keyed_intents += 1
            result.keyed_doubles += extra


def _count_views(
    journal: Journal, views: dict[int, int], outage: Window | None, result: Durability
) -> None:
    """Views per share against the clicks answered with a redirect."""
    redirects: Counter[int] = Counter()
    touched_outage: set[int] = set()
    for click in journal.clicks:
        if 300 <= click.status < 400:
            redirects[click.share_id] += 1
        if outage and overlaps(click.started, click.seconds, outage):
            touched_outage.add(click.share_id)
    result.redirects = sum(redirects.values())
    result.views = sum(views.values())
    for share_id in set(redirects) | set(views):
        gap = redirects[share_id] - views.get(share_id, 0)
        if gap > 0:
            result.missing_views += gap
            if share_id not in touched_outage:
                result.missing_views_outside += gap
        else:
            result.extra_views -= gap
