"""`enablement assets rescore` recomputes pitch scores after PRODUCT_TERMS change."""

from dataclasses import replace

from enablement.db.models import Asset
from tests.conftest import Cli
from tests.crm_data import insert_asset


def test_rescoring_flags_assets_that_name_a_newly_configured_product(app, sessions):
    insert_asset(
        sessions, "pitch", title="Why Zephyr Cloud wins", summary="Zephyr Cloud does it all."
    )
    insert_asset(sessions, "pov", title="The buying committee has changed", summary="Five shifts.")
    container = app.extensions["enablement"]
    container.settings = replace(container.settings, product_terms=("Zephyr Cloud",))
    result = Cli(app)("assets", "rescore")
    assert result.exit_code == 0, result.stderr
    assert "2 changed" in result.stdout  # both were unscored
    with sessions() as session:
        pitch, pov = session.get(Asset, "pitch"), session.get(Asset, "pov")
    assert pitch.pitch_flag and pitch.pitch_score == 1.0
    assert not pov.pitch_flag
    assert "0 changed" in Cli(app)("assets", "rescore").stdout
