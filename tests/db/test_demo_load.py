"""`enablement demo` loads a consistent dataset once and prints working sign-in tokens every time."""

import re

import pytest
from sqlalchemy import func, select

from enablement.db.models import (
    ApiToken,
    Asset,
    AssetTag,
    CrmStage,
    Deal,
    LinkView,
    Owner,
    Share,
    StageChange,
)
from enablement.errors import Unauthenticated
from enablement.services.tokens import authenticate

SMALL = ("demo", "--deals", "60", "--assets", "30")
TOKEN_LINE = re.compile(r"^\s+(sales|marketing|admin)\s+(enb_\S+)", re.MULTILINE)


def printed_tokens(stdout: str) -> dict[str, str]:
    return dict(TOKEN_LINE.findall(stdout))


def count(sessions, model, *where) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_demo_loads_deals_histories_assets_shares_and_views(runner, sessions):
    result = runner(*SMALL)
    assert result.exit_code == 0, result.stderr
    assert "demo data loaded" in result.stdout and "60 deals" in result.stdout
    assert count(sessions, Deal) == 60
    assert count(sessions, Owner) == 8
    assert count(sessions, Asset) == 30
    assert count(sessions, CrmStage) == 16
    assert count(sessions, StageChange, StageChange.source == "demo") >= 60
    assert count(sessions, Share, Share.source == "demo") > 60
    assert count(sessions, LinkView) > 0
    with sessions() as session:
        deal = session.scalars(select(Deal).order_by(Deal.id)).first()
        assert deal.current_stage_id == deal.stage_history[-1].stage_id
        assert deal.stage_history[0].entered_at == deal.created_at
        pitch = session.scalars(select(Asset).where(Asset.pitch_flag.is_(True))).all()
        assert pitch and all(a.pitch_score >= 0.35 for a in pitch)
        tagged = next(a for a in session.scalars(select(Asset).order_by(Asset.id)) if a.stages)
        tags = {(t.dimension, t.value) for t in tagged.tags}
        assert {("stage", s) for s in tagged.stages} <= tags
        assert {("persona", p) for p in tagged.personas} <= tags
        assert {t.dimension for t in session.scalars(select(AssetTag))} == {
            "stage",
            "persona",
            "industry",
            "topic",
        }
        default = session.get(CrmStage, ("default", "presentationscheduled"))
        assert default.buying_stage == "evaluation" and default.mapping_source == "suggested"


def test_if_empty_adds_nothing_but_prints_fresh_tokens(runner, sessions):
    first = runner(*SMALL)
    before = (count(sessions, Deal), count(sessions, Share), count(sessions, StageChange))
    old = printed_tokens(first.stdout)
    second = runner(*SMALL, "--if-empty")
    assert second.exit_code == 0, second.stderr
    assert "not loaded" in second.stdout and "60 deals and 30 assets" in second.stdout
    assert (count(sessions, Deal), count(sessions, Share), count(sessions, StageChange)) == before
    new = printed_tokens(second.stdout)
    assert set(new) == {"sales", "marketing", "admin"} and new != old
    with pytest.raises(Unauthenticated):
        authenticate(sessions, f"Bearer {old['admin']}")
    assert count(sessions, ApiToken, ApiToken.revoked_at.is_(None)) == 3


def test_printed_tokens_authenticate_with_their_roles(runner, sessions, settings):
    result = runner(*SMALL)
    found = printed_tokens(result.stdout)
    for role, token in found.items():
        principal = authenticate(sessions, f"Bearer {token}")
        assert principal.role == role and principal.name == f"demo {role}"
    assert authenticate(sessions, f"Bearer {found['sales']}").owner_id == "90210001"
    assert f"{settings.public_base_url}/api/v1/assets" in result.stdout


def test_a_second_load_without_if_empty_is_refused_and_changes_nothing(runner, sessions):
    runner(*SMALL, "--no-print-tokens")
    again = runner(*SMALL)
    assert again.exit_code == 1
    assert "empty database only" in again.stderr
    assert count(sessions, Deal) == 60 and count(sessions, Asset) == 30
    assert count(sessions, ApiToken) == 0


def test_no_print_tokens_prints_none(runner, sessions):
    result = runner("demo", "--deals", "5", "--assets", "20", "--no-print-tokens")
    assert result.exit_code == 0
    assert not printed_tokens(result.stdout) and "enb_" not in result.stdout
    assert count(sessions, ApiToken) == 0


def test_out_of_range_sizes_are_usage_errors(runner, sessions):
    assert runner("demo", "--assets", "5").exit_code == 2
    assert runner("demo", "--deals", "0").exit_code == 2
    assert runner("demo", "--seed", "abc").exit_code == 2
    assert count(sessions, Deal) == 0
