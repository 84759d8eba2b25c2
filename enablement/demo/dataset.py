"""A deterministic demo dataset: pipelines, reps, deals with stage histories, assets, shares and views.

Pure: the same seed, sizes and `now` always give the same data. Deals are walked by the one
simulator (enablement.simulation): piecewise-constant hazards, so a share of an asset with a
planted effect multiplies the deal's hazard of moving forward from that moment on. The later
effectiveness report has real effects to find, and most assets have none.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from enablement.demo.deals import DemoShare, simulate_deals
from enablement.demo.library import DemoAsset, PlantedEffect, build_library
from enablement.demo.world import PIPELINES, PRODUCT_NAMES, REPS
from enablement.domain.crm import DealRecord, OwnerRecord, PipelineRecord

MIN_ASSETS = 20


@dataclass(frozen=True)
class DemoData:
    """Everything the demo loads."""

    pipelines: tuple[PipelineRecord, ...]
    owners: tuple[OwnerRecord, ...]
    deals: tuple[DealRecord, ...]
    assets: tuple[DemoAsset, ...]
    shares: tuple[DemoShare, ...]
    planted: tuple[PlantedEffect, ...]
    product_names: tuple[str, ...] = PRODUCT_NAMES


def generate_demo(now: datetime, seed: int = 42, deals: int = 2000, assets: int = 300) -> DemoData:
    """Build the demo dataset ending at `now` (aware); same arguments, same data."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if assets < MIN_ASSETS:
        raise ValueError(f"the demo needs at least {MIN_ASSETS} assets")
    if deals < 1:
        raise ValueError("the demo needs at least one deal")
    import numpy as np  # NOTE: here, not at the top: starting the CLI must not load numpy

    now = now.astimezone(UTC).replace(microsecond=0)
    # NOTE: the library and the cast (companies, asset popularity) come from random.Random, the
    # deals' walks from numpy's generator, the kind enablement.simulation and the tests use.
    cast_rng = random.Random(seed)
    library, planted = build_library(cast_rng, now, assets)
    deal_records, shares = simulate_deals(
        cast_rng, np.random.default_rng(seed), now, deals, library, planted
    )
    return DemoData(
        pipelines=tuple(p.record(display_order=i) for i, p in enumerate(PIPELINES)),
        owners=tuple(rep.owner_record() for rep in REPS),
        deals=deal_records,
        assets=library,
        shares=shares,
        planted=planted,
    )


def summary_counts(data: DemoData) -> dict[str, int]:
    """Counts for the load report: deals by outcome, assets by status, shares and views."""
    closed_won = {s.id for p in PIPELINES for s in p.stages if s.is_won}
    closed_lost = {s.id for p in PIPELINES for s in p.stages if s.is_closed and not s.is_won}
    current = [d.stage_history[-1].stage_id for d in data.deals]
    return {
        "deals": len(data.deals),
        "won": sum(s in closed_won for s in current),
        "lost": sum(s in closed_lost for s in current),
        "open": sum(s not in closed_won and s not in closed_lost for s in current),
        "stage_changes": sum(len(d.stage_history) for d in data.deals),
        "assets": len(data.assets),
        "shares": len(data.shares),
        "views": sum(len(s.viewed_at) for s in data.shares),
    }
