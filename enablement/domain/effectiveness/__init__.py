"""The effectiveness report: which pieces shorten a buying stage, and whether the recommender does.

Modules: report (per (asset, stage) effects), recommender_impact (recommended vs holdout),
stage_model (the adjustment), diagnostics, medians, estimates and verdicts. The estimators
themselves live in enablement.domain.survival.
"""

from enablement.domain.effectiveness.recommender_impact import IMPACT_METHOD, recommender_impact
from enablement.domain.effectiveness.report import METHOD, compute_effectiveness, exposure_effect

__all__ = [
    "IMPACT_METHOD",
    "METHOD",
    "compute_effectiveness",
    "exposure_effect",
    "recommender_impact",
]
