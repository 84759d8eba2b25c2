"""Narrowing a computed report to what a reader asked for: verdict, stage, asset.

Pure: the report stays as computed (and cached); filters make a smaller copy for one answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from enablement.domain.tags import tag_key


@dataclass(frozen=True)
class EffectFilter:
    """Which effectiveness rows to show; by default insufficient_data rows are counted, not shown."""

    verdict: str | None = None
    stage: str | None = None
    asset: str | None = None
    include_insufficient: bool = False

    def keeps(self, item: dict) -> bool:
        """True when the row passes every filter given (compared without regard to case)."""
        if self.verdict is not None and item.get("verdict") != tag_key(self.verdict):
            return False
        if self.stage is not None and (item.get("buying_stage") or "") != tag_key(self.stage):
            return False
        return self.asset is None or tag_key(item.get("asset_id") or "") == tag_key(self.asset)


def filter_effectiveness(report: dict, wanted: EffectFilter) -> dict:
    """A copy of the report with only the rows wanted, and how many insufficient_data rows were hidden.

    Asking for verdict=insufficient_data shows those rows: the filter says what is wanted.
    The recommender-impact rows follow the verdict and stage filters, are all kept by default
    (an insufficient_data row there says why the impact cannot be measured yet) and concern no
    asset, so an asset filter leaves them out.
    """
    show_insufficient = wanted.include_insufficient or (
        wanted.verdict is not None and tag_key(wanted.verdict) == "insufficient_data"
    )
    kept, hidden = [], 0
    for item in report.get("items", []):
        if not wanted.keeps(item):
            continue
        if item.get("verdict") == "insufficient_data" and not show_insufficient:
            hidden += 1
            continue
        kept.append(item)
    impact = [
        row
        for row in report.get("recommender_impact", [])
        if wanted.asset is None and wanted.keeps(row)
    ]
    return {
        **report,
        "items": kept,
        "hidden_insufficient_data": hidden,
        "recommender_impact": impact,
    }
