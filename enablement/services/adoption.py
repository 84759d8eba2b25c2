"""Adoption per rep: how many shares each sharer made and how many of them the buyer opened."""

from __future__ import annotations

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session, sessionmaker

from enablement.db import reading
from enablement.db.models import LinkView, Owner, Share


def adoption_by_rep(sessions: sessionmaker[Session]) -> list[dict]:
    """One row per sharer (owner id or token name): shares, shares opened, buyer opens, open rate.

    The open rate is null (with no share there is nothing to rate) rather than a 0/0.
    """
    views = (
        select(LinkView.share_id, func.count().label("opens"))
        .group_by(LinkView.share_id)
        .subquery()
    )
    with sessions() as session:
        rows = session.execute(
            select(
                Share.shared_by,
                func.count(Share.id),
                func.count(views.c.share_id),
                func.coalesce(func.sum(views.c.opens), 0),
                func.count(distinct(Share.deal_id)),
            )
            .outerjoin(views, views.c.share_id == Share.id)
            .group_by(Share.shared_by)
        ).all()
        names = owner_names(session)
    result = [
        {
            "shared_by": by,
            "name": names.get(by or "", by or "(unknown)"),
            "shares": shares,
            "deals": deals,
            "opened_shares": opened,
            "buyer_opens": int(opens),
            "open_rate": round(opened / shares, 3) if shares else None,
        }
        for by, shares, opened, opens, deals in rows
    ]
    return sorted(result, key=lambda r: (-r["shares"], r["name"]))


def owner_names(session: Session, ids=None) -> dict[str, str]:
    """CRM owner id -> the name people know them by (first and last name, else email, else id).

    `ids` limits the lookup; None reads every owner. The one rule for showing an owner.
    """
    query = select(Owner)
    if ids is not None:
        query = query.where(Owner.id.in_(sorted({i for i in ids if i})))
    return {
        o.id: " ".join(p for p in (o.first_name, o.last_name) if p) or o.email or o.id
        for o in session.scalars(query)
    }


def shown_names(sessions: sessionmaker[Session], ids) -> dict[str, str]:
    """owner_names in a session of its own (for a page that shows who shared what); no query
    when no id is given (shares imported or made by tokens without an owner)."""
    ids = [i for i in ids if i]
    if not ids:
        return {}
    with reading(sessions) as session:
        return owner_names(session, ids)
