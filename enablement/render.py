"""Presenting reports: JSON, CSV (formula cells defused), aligned text tables and the coverage HTML page.

The one place that turns a report's plain data into text, for the API and the command line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from markupsafe import Markup

from enablement import TEMPLATES
from enablement.domain.timestamps import format_for_people, format_readable
from enablement.errors import InvalidInput

FORMATS = ("table", "json", "csv", "html")
# Report kind -> (the list that is its main table, that table's columns in order).
TABLES = {
    "coverage": (
        "cells",
        [
            "stage",
            "dimension",
            "value",
            "live_assets",
            "stale_assets",
            "shares_90d",
            "open_deals",
            "status",
        ],
    ),
    "effectiveness": (
        "items",
        [
            "asset_id",
            "title",
            "buying_stage",
            "exposed_episodes",
            "exposed_advances",
            "hazard_ratio",
            "ci_low",
            "ci_high",
            "p_value",
            "q_value",
            "median_days_exposed",
            "median_days_unexposed",
            "verdict",
            "reason",
            "smd_log_amount",
            "smd_industry_max",
            "smd_owner_max",
            "imbalanced",
            "ph_p_value",
            "e_value",
            "e_value_ci",
            "smd_entry_date",
            "co_send_share",
            "co_send_partner",
            "co_send_partner_share",
            "co_send_flag",
            "inseparable_from",
            "joint_of",
            "entry_periods",
        ],
    ),
    "recommendations": ("funnel", ["asset_id", "title", "recommended", "shared", "opened"]),
}
CYCLE_COLUMNS = [
    "section",
    "pipeline_id",
    "stage",
    "label",
    "buying_stage",
    "entered",
    "advanced",
    "lost",
    "open",
    "other",
    "median_days",
    "p25_days",
    "p75_days",
    "advanced_at_median",
    "advanced_30d",
    "lost_30d",
    "advanced_90d",
    "lost_90d",
    "cif_median_days",
    "won",
]


def template_folder() -> Path:
    """The Jinja templates folder, wherever the package locates it (source tree or wheel)."""
    return Path(TEMPLATES)


def _cycle_rows(report: dict) -> list[dict]:
    """Cycle-time report flattened into one table with a section column."""
    rows = []
    for r in report["crm_stages"]:
        rows.append({"section": "crm_stage", "stage": r["stage_id"], **r})
    for r in report["buying_stages"]:
        rows.append({"section": "buying_stage", "stage": r["buying_stage"], **r})
    for r in report["won_cycle_by_month"]:
        rows.append({"section": "won_by_month", "stage": r["month"], "entered": r["created"], **r})
    return [{c: r.get(c) for c in CYCLE_COLUMNS} for r in rows]


def _effect_row(item: dict) -> dict:
    """One effectiveness item with its diagnostics flattened into columns (empty when not fitted)."""
    diag = item.get("diagnostics") or {}
    balance = diag.get("balance") or {}
    flat = {
        **item,
        **{k: balance.get(k) for k in ("smd_log_amount", "smd_industry_max", "smd_owner_max")},
        "imbalanced": balance.get("imbalanced"),
        "ph_p_value": (diag.get("proportional_hazards") or {}).get("p_value"),
        "e_value": diag.get("e_value"),
        "e_value_ci": diag.get("e_value_ci"),
        "smd_entry_date": balance.get("smd_entry_date"),
    }
    co = diag.get("co_send") or {}
    top = (co.get("partners") or [{}])[0]
    flat |= {
        "co_send_share": co.get("share"),
        "co_send_partner": top.get("asset_id"),
        "co_send_partner_share": top.get("share"),
        "co_send_flag": co.get("flag"),
        "inseparable_from": ";".join(item.get("inseparable_from") or []) or None,
        "joint_of": ";".join(item.get("joint_of") or []) or None,
        "entry_periods": (diag.get("calendar") or {}).get("entry_periods"),
    }
    return {c: flat.get(c) for c in TABLES["effectiveness"][1]}


def _impact_row(row: dict) -> dict:
    """A recommender-impact row as an effectiveness row: no asset, the recommended group as exposed."""
    holdout = f"{row['holdout_episodes']} holdout episodes ({row['holdout_advances']} advanced)"
    return _effect_row(
        {
            **row,
            "asset_id": "",
            "title": "Recommender impact: recommended group vs holdout"
            + ("" if row.get("trigger", "any") == "any" else f" ({row['trigger']})"),
            "exposed_episodes": row["recommended_episodes"],
            "exposed_advances": row["recommended_advances"],
            "q_value": row.get("p_value"),
            "reason": f"{row['reason']}; {holdout}" if row.get("reason") else holdout,
        }
    )


def table_rows(kind: str, report: dict) -> tuple[list[str], list[dict]]:
    """The report's main table: column names and rows."""
    if kind == "cycle-time":
        return CYCLE_COLUMNS, _cycle_rows(report)
    if kind == "effectiveness":
        rows = [_effect_row(item) for item in report["items"]]
        impact = [_impact_row(row) for row in report.get("recommender_impact", [])]
        return TABLES[kind][1], rows + impact
    field, columns = TABLES[kind]
    return columns, [{c: item.get(c) for c in columns} for item in report[field]]


def render(kind: str, report: dict, fmt: str) -> str:
    """The report as json, csv, a text table, or (coverage only) a self-contained HTML page."""
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    if fmt == "html":
        if kind != "coverage":
            raise InvalidInput("--format html is available for the coverage report only")
        return render_coverage_html(report)
    columns, rows = table_rows(kind, report)
    if fmt == "csv":
        return render_csv(columns, rows)
    if fmt == "table":
        if kind == "coverage":
            return coverage_table(report)
        text = text_table(columns, rows) + f"\nas of {format_for_people(report['as_of'])}\n"
        if kind == "recommendations":
            groups = report["groups"]
            text += (
                f"{groups['recommended_deals']} deal(s) shown recommendations, "
                f"{groups['holdout_deals']} held out\n"
            )
        return text
    raise InvalidInput(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render_api_json(report: dict) -> str:
    """The report as the API's compact JSON body (NaN refused: the domain answers null instead)."""
    return json.dumps(report, allow_nan=False)


def render_csv(columns: list[str], rows: list[dict]) -> str:
    """CSV with a header row, "\\n" line ends, empty cells for null and formula-looking text defused."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{c: csv_cell(r[c]) for c in columns} for r in rows])
    return out.getvalue()


# Cells starting with one of these run as formulas in spreadsheets (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """Empty for null; formula-looking text prefixed with ' so spreadsheets do not run it."""
    if value is None:
        return ""
    # NOTE: text that already starts with quotes before a formula start gets one more, so
    # csv_uncell gives back exactly the text ("'=x" is written "''=x").
    if isinstance(value, str) and value.lstrip("'")[:1] in FORMULA_STARTS and value.lstrip("'"):
        return "'" + value
    return value


def csv_uncell(value: str) -> str:
    """Undo csv_cell's escape ('=...), so an exported file imports back unchanged."""
    rest = value.lstrip("'")
    if value[:1] == "'" and rest and rest[:1] in FORMULA_STARTS:
        return value[1:]
    return value


# Text table cells wrap onto further lines past this many characters (whole words kept).
CELL_WIDTH = 40


def text_table(columns: list[str], rows: list[dict]) -> str:
    """A plain aligned table; long text wraps between words onto further lines of its row, so
    nothing is cut (a word longer than a line, such as a URL, stays whole)."""
    import textwrap

    def lines_of(value) -> list[str]:
        text = "" if value is None else " ".join(str(value).split())
        return textwrap.wrap(text, CELL_WIDTH, break_long_words=False, break_on_hyphens=False) or [
            ""
        ]

    cells = [[lines_of(r[c]) for c in columns] for r in rows]
    widths = [
        max([len(c)] + [len(line) for row in cells for line in row[i]])
        for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    for row in cells:
        for k in range(max(len(cell) for cell in row)):
            parts = [cell[k] if k < len(cell) else "" for cell in row]
            lines.append("  ".join(v.ljust(w) for v, w in zip(parts, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


# The coverage page's sections below its matrices, as (title, report list, columns), so the
# text table shows everything the HTML page does.
COVERAGE_SECTIONS = (
    ("Gaps", "gaps", ["stage", "dimension", "value", "open_deals", "stale_assets"]),
    (
        "CRM stages without a reliable mapping",
        "unmapped_stages",
        ["pipeline_id", "stage_id", "label", "problem", "buying_stage", "confidence", "open_deals"],
    ),
    (
        "Product pitches, not point of view",
        "product_pitch_assets",
        ["asset_id", "title", "author", "pitch_score"],
    ),
    ("Assets with no buying stage", "untagged_assets", ["asset_id", "title", "author", "missing"]),
    ("Shared but never opened", "never_opened_assets", ["asset_id", "title", "author", "shares"]),
    ("Live but never shared", "never_shared_assets", ["asset_id", "title", "author"]),
)


def coverage_table(report: dict) -> str:
    """The coverage report as text: every cell (the CSV's table), then each section of the HTML page."""
    columns, rows = table_rows("coverage", report)
    parts = [
        text_table(columns, rows),
        "",
        "By buying stage",
        text_table(
            ["stage", "live_assets", "stale_assets", "shares_90d", "open_deals", "status"],
            report["stages"],
        ),
    ]
    for title, key, section_columns in COVERAGE_SECTIONS:
        items = report.get(key, [])
        parts += ["", f"{title} ({len(items)})"]
        if items:
            rows = [{c: _cell_text(item.get(c)) for c in section_columns} for item in items]
            parts.append(text_table(section_columns, rows))
    stages = [s["stage"] for s in report["stages"]]
    authors = report.get("authors", [])
    parts += ["", f"Voices: named authors per stage ({len(authors)})"]
    if authors:
        rows = [
            {"author": a["author"], **a["stages"], "live_assets": a["live_assets"]} for a in authors
        ]
        parts.append(text_table(["author", *stages, "live_assets"], rows))
    parts += [
        "",
        f"as of {format_for_people(report['as_of'])} "
        f"(thin: open deals and fewer than {report['min_assets']} live assets)",
    ]
    return "\n".join(parts) + "\n"


def _cell_text(value):
    """A list as '; '-joined text for a table cell; anything else unchanged."""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value


def time_element(value) -> Markup:
    """A moment for a page: <time datetime="ISO">14 Nov 2026, 20:08 UTC</time> (empty for None).

    The text reads without JavaScript; app.js shows it in the reader's own time zone.
    """
    iso = format_for_people(value)
    if iso is None:
        return Markup("")
    return Markup('<time datetime="{}">{}</time>').format(iso, format_readable(iso))


def coverage_context(report: dict) -> dict:
    """What the coverage template draws: the report, a matrix per dimension and the stage order."""
    from enablement.charts import heat_level

    matrices = []
    for dim, title in (("persona", "Persona"), ("industry", "Industry"), ("topic", "Topic")):
        cells = [c for c in report["cells"] if c["dimension"] == dim]
        values = sorted({c["value"] for c in cells})
        peak = max([c["live_assets"] for c in cells] + [1])
        grid = {
            (c["value"], c["stage"]): {**c, "level": heat_level(c["live_assets"], peak)}
            for c in cells
        }
        matrices.append(
            {"dimension": dim, "title": title, "values": values, "grid": grid, "peak": peak}
        )
    return {
        "report": {**report, "as_of": format_readable(report["as_of"])},
        "as_of_time": time_element(report["as_of"]),
        "matrices": matrices,
        "stages": [s["stage"] for s in report["stages"]],
    }


def render_coverage_html(report: dict) -> str:
    """One self-contained HTML file (inline CSS, no external URL): the live page's own template."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(template_folder())),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report_coverage.html").render(
        layout="report_standalone.html", **coverage_context(report)
    )


# What a report row's verdict means for that row, in plain words (the effectiveness page).
def effect_meaning(row: dict, tests: int, q_max: float) -> str:
    """One or two sentences on what this row's verdict means and why, for a marketer.

    `tests` is how many (asset, stage) pairs the false-discovery correction ran over; a
    no-evidence row whose interval leaves out 1 says that correction is why.
    """
    stage = row.get("buying_stage") or "the stage"
    hr, low, high, q = (row.get(k) for k in ("hazard_ratio", "ci_low", "ci_high", "q_value"))
    verdict = row.get("verdict")
    if verdict == "insufficient_data" or hr is None:
        return f"Not enough data to estimate: {row.get('reason') or 'too few exposed deals'}."
    interval = f"95% interval {low:.2f}–{high:.2f}" if low is not None and high is not None else ""
    corrected = (
        f"q {q:.3f} after the false-discovery correction over {tests} tests"
        if q is not None
        else ""
    )
    if verdict == "shortens":
        return (
            f"Deals sent this piece left {stage} for a later stage sooner: about {hr:.2f}× the "
            f"rate of comparable deals not sent it ({interval}; {corrected}, at most {q_max:g}). "
            "Worth sending at this stage."
        )
    if verdict == "lengthens":
        return (
            f"Deals sent this piece stayed in {stage} longer: they advanced at {hr:.2f}× the rate "
            f"of comparable deals ({interval}; {corrected}, at most {q_max:g}). "
            "Review it before sending it at this stage."
        )
    if low is not None and high is not None and (low > 1 or high < 1):
        direction = "sooner" if low > 1 else "later"
        return (
            f"The {interval} leaves out 1 (deals advanced {direction}), but {tests} pairs were "
            f"tested at once, and among that many a result this strong turns up by chance "
            f"({corrected}, above {q_max:g}). No evidence yet: more exposed deals will tell."
        )
    if low is not None and high is not None:
        return (
            f"The {interval} includes 1: the data fit a faster and a slower stage alike. "
            "No evidence either way yet."
        )
    return "No interval could be estimated: no evidence either way."


# What a near-duplicate warning's reason says (domain.assets.find_near_duplicates).
DUPLICATE_REASONS = {"same_url": "has the same URL as", "similar_title": "has a title very like"}


def duplicate_parts(warning: dict, titles: dict[str, str]) -> dict:
    """A near-duplicate warning as people read it: both pieces by title (and id), the reason in
    words; `titles` maps asset ids to titles (services.assets.asset_titles)."""
    reason = warning.get("reason") or ""
    return {
        "id": warning.get("asset_id"),
        "title": titles.get(warning.get("asset_id"), warning.get("asset_id")),
        "other_id": warning.get("of"),
        "other_title": titles.get(warning.get("of"), warning.get("of")),
        "reason": DUPLICATE_REASONS.get(reason, reason.replace("_", " ")),
    }


def duplicate_text(warning: dict, titles: dict[str, str]) -> str:
    """One line: 'possible duplicate: “A” (a1) has the same URL as “B” (b2)'."""
    p = duplicate_parts(warning, titles)
    return (
        f"possible duplicate: “{p['title']}” ({p['id']}) {p['reason']} "
        f"“{p['other_title']}” ({p['other_id']})"
    )
