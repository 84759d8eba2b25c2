"""Effectiveness report time and peak memory at 10,000, 40,000 and 100,000 deals (300 assets, ~5 shares a deal).

Run: `.venv/bin/python benchmarks/bench_effectiveness.py` (or `make bench`). Each size runs in a
fresh subprocess so its peak memory (max RSS) is its own. Timed: building stage episodes from
the stage history plus the whole effectiveness computation (adjustment models, one joint Cox model
per stage of every piece with enough exposed episodes, stratified by entry period, co-send counts,
diagnostics, Kaplan-Meier medians, BH q-values). Wall and CPU time (the machine may be shared: CPU time is the steadier
figure). Not timed: generating the synthetic data (its memory is in the peak). Targets: 100,000
deals < 30 s CPU and < 600 MB; 40k/10k time ratio <= 4.5 (linear is 4.0), measured side by side.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enablement.domain.effectiveness import compute_effectiveness  # noqa: E402
from enablement.domain.episodes import DAY_NS, build_episodes  # noqa: E402

SIZES = (10_000, 40_000, 100_000)
N_ASSETS = 300
SHARES_PER_DEAL = 5
AS_OF = datetime(2026, 6, 30, tzinfo=UTC)
STAGES = ("awareness", "interest", "evaluation", "closing")


def generate(n_deals: int, seed: int = 1):
    """Synthetic deals: four stages, size and industry effects, lost and open deals, random shares."""
    rng = np.random.default_rng(seed)
    stage_map = pd.DataFrame(
        [("p1", f"s{i}", s, False, False, i) for i, s in enumerate(STAGES)]
        + [("p1", "won", None, True, True, 4), ("p1", "lost", None, True, False, 5)]
        + [("p2", f"s{i}", s, False, False, i) for i, s in enumerate(STAGES)]
        + [("p2", "won", None, True, True, 4), ("p2", "lost", None, True, False, 5)],
        columns=["pipeline_id", "stage_id", "buying_stage", "is_closed", "is_won", "display_order"],
    )
    as_of = AS_OF.timestamp() / 86400
    created = as_of - rng.uniform(5, 500, n_deals)
    z = rng.normal(0, 1, n_deals)
    industry = rng.choice(["software", "finance", "retail", "health", "energy"], n_deals)
    owner = rng.choice([f"o{i}" for i in range(25)], n_deals)
    pipeline = np.where(rng.random(n_deals) < 0.7, "p1", "p2")
    rate = np.exp(-0.5 * z) / 20
    # NOTE: vectorised over deals, one buying stage at a time: a per-deal Python loop leaves
    # hundreds of MB of allocator garbage that would count in the report's peak memory.
    hist_deal, hist_stage, hist_t = [], [], []
    ends = np.empty(n_deals)
    active = np.arange(n_deals)
    t = created.copy()
    for i in range(4):
        hist_deal.append(active)
        hist_stage.append(np.full(len(active), f"s{i}", dtype=object))
        hist_t.append(t[active])
        adv = rng.exponential(1 / rate[active])
        lost = rng.exponential(90, len(active))
        end = t[active] + np.minimum(adv, lost)
        cut = end > as_of
        ends[active[cut]] = as_of
        closing = ~cut & ((lost < adv) | (i == 3))
        hist_deal.append(active[closing])
        hist_stage.append(np.where(lost[closing] < adv[closing], "lost", "won").astype(object))
        hist_t.append(end[closing])
        ends[active[closing]] = end[closing]
        moving = ~cut & ~closing
        t[active[moving]] = end[moving]
        active = active[moving]
    hist_deal = np.concatenate(hist_deal)
    hist_stage = np.concatenate(hist_stage)
    hist_t = np.concatenate(hist_t)
    order = np.lexsort((hist_t, hist_deal))
    hist_deal, hist_stage, hist_t = hist_deal[order], hist_stage[order], hist_t[order]
    hist_pipe = pipeline[hist_deal]
    # NOTE: shares arrive at a constant rate while the deal is open (count proportional to its
    # lifetime); a fixed count per deal would pack more shares into short deals and make
    # exposure foretell the end.
    lifetime = ends - created
    n_shares = rng.poisson(SHARES_PER_DEAL * lifetime / lifetime.mean())
    share_deal = np.repeat(np.arange(n_deals), n_shares)
    share_t = created[share_deal] + rng.random(len(share_deal)) * (ends - created)[share_deal]
    ids = np.array([f"d{k:06d}" for k in range(n_deals)])
    to_time = lambda days: pd.to_datetime(np.asarray(days) * DAY_NS, utc=True)  # noqa: E731
    history = pd.DataFrame(
        {
            "deal_id": ids[hist_deal],
            "pipeline_id": hist_pipe,
            "stage_id": hist_stage,
            "entered_at": to_time(hist_t),
        }
    )
    deals = pd.DataFrame(
        {
            "deal_id": ids,
            "pipeline_id": pipeline,
            "amount": np.exp(10 + z),
            "industry": industry,
            "owner_id": owner,
        }
    )
    shares = pd.DataFrame(
        {
            "deal_id": ids[share_deal],
            "asset_id": np.array([f"a{i:03d}" for i in range(N_ASSETS)])[
                rng.integers(0, N_ASSETS, len(share_deal))
            ],
            "shared_at": to_time(share_t),
        }
    )
    return stage_map, history, deals, shares


def measure(n_deals: int) -> dict:
    """Generate, then time episodes + effectiveness; peak RSS of this process."""
    stage_map, history, deals, shares = generate(n_deals)
    start, cpu = time.perf_counter(), time.process_time()
    episodes, _ = build_episodes(history, stage_map, AS_OF)
    report = compute_effectiveness(episodes, deals, shares, {}, AS_OF.isoformat())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    verdicts: dict[str, int] = {}
    for item in report["items"]:
        verdicts[item["verdict"]] = verdicts.get(item["verdict"], 0) + 1
    return {
        "deals": n_deals,
        "stage_changes": len(history),
        "shares": len(shares),
        "episodes": len(episodes),
        "pairs": len(report["items"]),
        "fitted": sum(1 for it in report["items"] if it["verdict"] != "insufficient_data"),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "verdicts": verdicts,
    }


def main() -> None:
    """Each size in its own subprocess; print a table and the 40k/10k ratios."""
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    results = []
    print(
        "effectiveness report: episodes + joint Cox model per stage + KM medians + BH (300 assets)"
    )
    print(
        f"{'deals':>7} {'changes':>8} {'shares':>8} {'pairs':>6} {'fitted':>6} {'seconds':>8} {'cpu s':>8} {'peak MB':>8}"
    )
    for n in SIZES:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{r['deals']:>7} {r['stage_changes']:>8} {r['shares']:>8} {r['pairs']:>6} "
            f"{r['fitted']:>6} {r['seconds']:>8} {r['cpu_seconds']:>8} {r['peak_rss_mb']:>8}",
            flush=True,
        )
    small, large = results[0], results[1]
    print(
        f"ratio {large['deals'] // small['deals']}x deals: time x{large['seconds'] / small['seconds']:.2f}, "
        f"cpu x{large['cpu_seconds'] / small['cpu_seconds']:.2f}, "
        f"peak memory x{large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (linear would be x4.00)"
    )
    top = results[-1]
    print(
        f"{top['deals']} deals: {top['seconds']} s wall, {top['cpu_seconds']} s cpu, "
        f"{top['peak_rss_mb']} MB (targets < 30 s cpu, < 600 MB)"
    )


if __name__ == "__main__":
    main()
