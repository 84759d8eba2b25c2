"""Figures for the browser pages against the API answering the same question, side by side.

    .venv/bin/python benchmarks/bench_pages.py [--deals 2000] [--assets 300] [--runs 30]

Loads the demo dataset into a throwaway SQLite file, signs in through the form, computes
each report once (the cache then answers), and times each page and its API twin through the
WSGI test client: median and 95th percentile in milliseconds, and the page/API ratio (the
cost of rendering HTML and SVG on top of the same services).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from enablement import create_app, db
from enablement.config import Settings
from enablement.services.deals import search_deals
from enablement.services.demo import issue_demo_tokens, load_demo


def timed(client, path: str, runs: int, headers: dict | None = None) -> list[float]:
    """Milliseconds of each of `runs` GETs (after one warm-up); fails on a non-200."""
    first = client.get(path, headers=headers or {})
    assert first.status_code == 200, (path, first.status_code)
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path, headers=headers or {})
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return out


def summary(ms: list[float]) -> tuple[float, float]:
    """Median and 95th percentile."""
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main() -> None:
    """Build the data, time every page and its API twin, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=2000)
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    settings = Settings(
        instance_path=folder / "instance",
        database_url=f"sqlite:///{folder / 'bench.db'}",
        secret_key="bench",  # noqa: S106 - a throwaway benchmark database
        public_base_url="http://bench.local",
    ).with_overrides()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    container = app.extensions["enablement"]
    started = time.perf_counter()
    load_demo(container.sessions, settings, deals=args.deals, assets=args.assets)
    print(
        f"demo data: {args.deals} deals, {args.assets} assets in {time.perf_counter() - started:.1f} s"
    )
    tokens = {t.role: t.token for t in issue_demo_tokens(container.sessions)}
    browser = app.test_client()
    form = browser.get("/signin").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    browser.post("/signin", data={"token": tokens["admin"], "csrf_token": csrf})
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {tokens['admin']}"}
    deal = search_deals(container.sessions, open=True, stage="evaluation")["items"][0]["id"]
    pairs = [
        ("deal list", "/deals", "/api/v1/deals?open=true&per_page=25"),
        (
            "fuzzy search",
            "/deals?q=acme+sytems",
            "/api/v1/deals?q=acme+sytems&open=true&per_page=25",
        ),
        ("deal page", f"/deals/{deal}", f"/api/v1/deals/{deal}"),
        ("asset list", "/assets", "/api/v1/assets?per_page=30"),
        ("coverage", "/reports/coverage", "/api/v1/reports/coverage"),
        (
            "effectiveness",
            "/reports/effectiveness",
            "/api/v1/reports/effectiveness?include_insufficient=true",
        ),
        ("cycle time", "/reports/cycle-time", "/api/v1/reports/cycle-time"),
        ("stage map", "/stage-map", "/api/v1/stage-map"),
        ("adoption", "/reports/adoption", None),
    ]
    print(f"{'page':<15}{'page ms (median/p95)':>24}{'API ms (median/p95)':>24}{'ratio':>8}")
    for name, page, twin in pairs:
        p50, p95 = summary(timed(browser, page, args.runs))
        if twin is None:
            print(f"{name:<15}{p50:>13.1f} / {p95:<8.1f}{'(no API twin)':>24}")
            continue
        if "/deals/" in page:
            # NOTE: the page also asks for recommendations; its twin is deal + recommendations.
            a = timed(api, twin, args.runs, bearer)
            b = timed(api, twin + "/recommendations", args.runs, bearer)
            a50, a95 = summary([x + y for x, y in zip(a, b, strict=True)])
        else:
            a50, a95 = summary(timed(api, twin, args.runs, bearer))
        print(f"{name:<15}{p50:>13.1f} / {p95:<8.1f}{a50:>13.1f} / {a95:<8.1f}{p50 / a50:>8.2f}")
    container.engine.dispose()


if __name__ == "__main__":
    main()
