"""Per-route figures, the targets, and the printed report of a load run."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from loadgen.checks import Durability
from loadgen.clients import NO_ANSWER, Call
from loadgen.windows import Window, overlaps

HEALTHZ = "/healthz"
MAX_P95_RATIO = 3.0


@dataclass(frozen=True)
class RouteFigures:
    """Latency and status counts of one route template."""

    route: str
    count: int
    per_second: float
    p50: float
    p95: float
    p99: float
    ok: int  # 2xx
    redirects: int  # 3xx
    client_errors: int  # 4xx
    server_errors: int  # 5xx other than 503
    unavailable: int  # 503
    no_answer: int  # reset, refused or timed out

    @property
    def is_read(self) -> bool:
        """Every GET route is a read for the p95 target (the POST of shares is not)."""
        return not self.route.endswith("/shares") and self.route != HEALTHZ


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(q / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def route_figures(calls: list[Call], seconds: float) -> list[RouteFigures]:
    """Figures per route template, /healthz first, answered calls only in the latencies."""
    by_route: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        if call.measured:
            by_route[call.route].append(call)
    figures = []
    for route, group in by_route.items():
        answered = sorted(c.seconds * 1000 for c in group if c.status != NO_ANSWER)
        statuses = [c.status for c in group]
        figures.append(
            RouteFigures(
                route=route,
                count=len(group),
                per_second=len(group) / seconds,
                p50=percentile(answered, 50),
                p95=percentile(answered, 95),
                p99=percentile(answered, 99),
                ok=sum(200 <= s < 300 for s in statuses),
                redirects=sum(300 <= s < 400 for s in statuses),
                client_errors=sum(400 <= s < 500 for s in statuses),
                server_errors=sum(500 <= s < 600 and s != 503 for s in statuses),
                unavailable=sum(s == 503 for s in statuses),
                no_answer=sum(s == NO_ANSWER or s < 100 for s in statuses),
            )
        )
    return sorted(figures, key=lambda f: (f.route != HEALTHZ, f.route))


def p95_ratios(figures: list[RouteFigures]) -> dict[str, float | None]:
    """Each read route's p95 divided by /healthz's p95 in the same run (None without /healthz)."""
    health = next((f for f in figures if f.route == HEALTHZ), None)
    out: dict[str, float | None] = {}
    for f in figures:
        if f.is_read:
            out[f.route] = f.p95 / health.p95 if health and health.p95 > 0 else None
    return out


def errors_by_window(calls: list[Call], outage: Window | None) -> dict[str, dict[str, int]]:
    """Failed calls (5xx or no answer) inside and outside the outage window, by kind."""
    out = {"inside": defaultdict(int), "outside": defaultdict(int)}
    for call in calls:
        kind = _failure_kind(call.status)
        if kind is None:
            continue
        where = "inside" if outage and overlaps(call.started, call.seconds, outage) else "outside"
        out[where][kind] += 1
    return {k: dict(v) for k, v in out.items()}


def _failure_kind(status: int) -> str | None:
    """'503', '5xx' (other), 'no answer', or None for an answer that is not a server failure."""
    if status == 503:
        return "503"
    if 500 <= status < 600:
        return "5xx"
    if status < 100:
        return "no answer"
    return None


def print_routes(figures: list[RouteFigures], ratios: dict[str, float | None]) -> None:
    """The per-route table with the p95 ratio to /healthz and its target."""
    head = (
        f"{'route':<34}{'count':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'2xx':>7}{'3xx':>6}{'4xx':>6}{'5xx':>6}{'503':>6}{'none':>6}  p95/healthz (<= 3x)"
    )
    print(head)
    print("-" * len(head))
    for f in figures:
        ratio = ratios.get(f.route)
        if f.route == HEALTHZ:
            mark = "(yardstick)"
        elif not f.is_read:
            mark = "(write, no target)"
        elif ratio is None:
            mark = "n/a"
        else:
            mark = f"{ratio:6.1f}x {'ok' if ratio <= MAX_P95_RATIO else 'FAIL'}"
        print(
            f"{f.route:<34}{f.count:>7}{f.per_second:>8.1f}{f.p50:>9.1f}{f.p95:>9.1f}{f.p99:>9.1f}"
            f"{f.ok:>7}{f.redirects:>6}{f.client_errors:>6}{f.server_errors:>6}{f.unavailable:>6}"
            f"{f.no_answer:>6}  {mark}"
        )


def print_report_states(states: list[str]) -> None:
    """How report requests were answered: the report (fresh or stale) or 202 (computing)."""
    if not states:
        return
    counts = Counter(states)
    parts = ", ".join(f"{state} {counts[state]}" for state in sorted(counts))
    print(f"Report answers (X-Report-State; 'computing' is a 202 to ask again): {parts}")


def print_durability(d: Durability) -> None:
    """The lost/doubled check."""
    print("Durability (database against what the clients were told):")
    print(
        f"  shares acknowledged (200/201): {d.acknowledged_shares}; missing: {len(d.missing_shares)}"
        f"; stored without an acknowledgement: {d.unacknowledged_shares}"
    )
    print(
        f"  double-clicks with one Idempotency-Key: {d.keyed_intents}, doubled shares: {d.keyed_doubles}"
    )
    print(
        f"  double-clicks without a key (same body): {d.keyless_intents}, doubled shares: {d.keyless_doubles}"
    )
    print(
        f"  link clicks redirected: {d.redirects}; views recorded: {d.views}; "
        f"redirects without a view: {d.missing_views} ({d.missing_views_outside} outside an outage); "
        f"views without a redirect answered: {d.extra_views}"
    )


def print_errors(windowed: dict[str, dict[str, int]], outage: Window | None) -> None:
    """Server failures inside and outside the outage window."""
    if outage:
        print(
            f"Outage window: {outage.start:.1f} s to {outage.end:.1f} s "
            f"({outage.end - outage.start:.1f} s, database stopped until it accepted connections)"
        )
        print(f"  failures inside the window:  {windowed['inside'] or 'none'}")
        if windowed["inside"].get("5xx"):
            print(
                "  (inside the window the documented answer is 503 with Retry-After, not other 5xx)"
            )
    print(f"  failures outside any outage: {windowed['outside'] or 'none'}")


def failures(
    figures: list[RouteFigures],
    ratios: dict[str, float | None],
    windowed: dict[str, dict[str, int]],
    durability: Durability,
) -> list[str]:
    """Every target that failed, as a sentence."""
    out = []
    outside = windowed["outside"]
    if outside:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(outside.items()))
        out.append(f"server failures outside an outage window: {what}")
    for route, ratio in ratios.items():
        if ratio is not None and ratio > MAX_P95_RATIO:
            out.append(
                f"{route}: p95 is {ratio:.1f}x /healthz's p95 (target <= {MAX_P95_RATIO:g}x)"
            )
    if not any(f.route == HEALTHZ and f.p95 > 0 for f in figures):
        out.append("no /healthz answer was measured, so no p95 ratio can be checked")
    out.extend(durability.failures)
    return out
