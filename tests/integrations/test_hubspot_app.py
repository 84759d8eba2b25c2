"""The HubSpot app project (integrations/hubspot/app): HubSpot's parser accepts it, and it asks for what the service uses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from enablement.web.hubspot_workflow import ACTION_PATH, ExecutionRequest
from integrations.hubspot.client import SYNC_SCOPES, WRITEBACK_SCOPES
from integrations.hubspot.mapping import DealProperties
from integrations.hubspot.webhooks import ACTIONS, PROPERTIES

APP = Path(__file__).resolve().parents[2] / "integrations" / "hubspot" / "app"
SRC = APP / "src" / "app"
TOOLING = APP / "tooling"
TOOLING_FILES = ("package.json", "package-lock.json", "check-project.mjs", "hsmeta-schemas.json")


def load(relative: str) -> dict:
    """A JSON file of the app's source."""
    return json.loads((SRC / relative).read_text())


def unavailable(reason: str):
    """Skip on a developer machine without Node or the npm registry; in CI that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run HubSpot's project parser)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def checker() -> Path:
    """HubSpot's project parser, installed once per lock file by `npm ci` beside the virtualenv."""
    if not (shutil.which("node") and shutil.which("npm")):
        unavailable("node and npm are not installed")
    cache = Path(sys.prefix) / "hubspot-tooling"
    lock = (TOOLING / "package-lock.json").read_bytes()
    installed = cache / "node_modules" / ".package-lock.json"
    if not (installed.exists() and (cache / "package-lock.json").read_bytes() == lock):
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(TOOLING / name, cache / name)
        done = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            unavailable(f"npm ci failed: {done.stderr.strip()[-300:]}")
    for name in TOOLING_FILES[2:]:
        shutil.copy(TOOLING / name, cache / name)
    return cache / "check-project.mjs"


def check(checker: Path, project: Path) -> tuple[int, dict]:
    """Run the checker on a project folder: (exit status, its JSON report)."""
    done = subprocess.run(
        ["node", str(checker), str(project)], capture_output=True, text=True, timeout=120
    )
    return done.returncode, json.loads(done.stdout)


def test_hubspots_parser_reads_the_project_and_every_component_matches_its_documented_schema(
    checker,
):
    status, report = check(checker, APP)
    assert (status, report["errors"]) == (0, [])
    assert sorted(c["type"] for c in report["components"].values()) == [
        "app",
        "card",
        "webhooks",
        "workflow-action",
    ]
    assert json.loads((APP / "hsproject.json").read_text())["platformVersion"] == "2026.09"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            lambda src: (src / "app/cards/recommendations-card-hsmeta.json").rename(
                src / "app/webhooks/card-hsmeta.json"
            ),
            "belongs in app/cards/",
        ),
        (
            lambda src: _edit(
                src / "app/cards/recommendations-card-hsmeta.json",
                lambda d: d["config"].update(location="crm.record.footer"),
            ),
            "allowed values",
        ),
        (
            lambda src: _edit(
                src / "app/app-hsmeta.json",
                lambda d: d["config"]["auth"].update(optionalScopes=["crm.objects.deals.write"]),
            ),
            "optionalScopes",
        ),
        (
            lambda src: _edit(
                src / "app/webhooks/webhooks-hsmeta.json",
                lambda d: d["config"]["subscriptions"]["crmObjects"][1].pop("propertyName"),
            ),
            "propertyName",
        ),
        (lambda src: (src / "app/cards/RecommendationsCard.jsx").unlink(), "does not exist"),
        (lambda src: (src / "app/app-hsmeta.json").write_text("{"), "not valid JSON"),
    ],
    ids=[
        "card-in-wrong-folder",
        "card-location",
        "static-optional-scopes",
        "property-change-without-property",
        "missing-entrypoint",
        "broken-json",
    ],
)
def test_the_checker_refuses_a_broken_project(checker, tmp_path, breakage, expected):
    project = tmp_path / "app"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns("node_modules", "tooling"))
    breakage(project / "src")
    status, report = check(checker, project)
    assert status == 1
    assert any(expected in error for error in report["errors"]), report["errors"]


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_app_asks_for_exactly_the_scopes_the_client_uses():
    auth = load("app-hsmeta.json")["config"]["auth"]
    assert (auth["type"], load("app-hsmeta.json")["config"]["distribution"]) == (
        "static",
        "private",
    )
    assert sorted(auth["requiredScopes"]) == sorted(SYNC_SCOPES + WRITEBACK_SCOPES)
    assert auth["optionalScopes"] == auth["conditionallyRequiredScopes"] == []


def test_webhook_subscriptions_are_generic_deal_events_for_everything_the_receiver_reads(app):
    config = load("webhooks/webhooks-hsmeta.json")["config"]
    subscriptions = config["subscriptions"]["crmObjects"]
    assert config["subscriptions"]["legacyCrmObjects"] == []
    assert {s["objectType"] for s in subscriptions} == {"deal"}
    assert all(s["active"] for s in subscriptions)
    actions = {s["subscriptionType"] for s in subscriptions}
    assert actions == {f"object.{action}" for action in ACTIONS}
    watched = {s["propertyName"] for s in subscriptions if "propertyName" in s}
    defaults = DealProperties()
    assert watched == set(PROPERTIES) | {defaults.industry, defaults.personas, defaults.topics}
    target = urlsplit(config["settings"]["targetUrl"])
    assert target.path in {rule.rule for rule in app.url_map.iter_rules()}


def test_the_card_the_webhooks_and_the_permitted_urls_name_one_https_service_address():
    fetch = load("app-hsmeta.json")["config"]["permittedUrls"]["fetch"]
    target = urlsplit(load("webhooks/webhooks-hsmeta.json")["config"]["settings"]["targetUrl"])
    card = (SRC / "cards" / "RecommendationsCard.jsx").read_text()
    (base,) = re.findall(r'^const BASE_URL = "([^"]+)";$', card, re.MULTILINE)
    assert fetch == [base] == [f"{target.scheme}://{target.netloc}"]
    assert base.startswith("https://")
    assert load("cards/recommendations-card-hsmeta.json")["config"]["objectTypes"] == ["deals"]


def test_the_workflow_action_calls_the_services_route_and_declares_what_it_answers(app):
    config = load("workflow-actions/suggest-content-hsmeta.json")["config"]
    action = urlsplit(config["actionUrl"])
    target = urlsplit(load("webhooks/webhooks-hsmeta.json")["config"]["settings"]["targetUrl"])
    assert (action.scheme, action.netloc) == (target.scheme, target.netloc)
    assert action.path == ACTION_PATH
    assert ACTION_PATH in {rule.rule for rule in app.url_map.iter_rules()}
    assert config["objectTypes"] == ["DEAL"]
    outputs = {f["typeDefinition"]["name"] for f in config["outputFields"]}
    assert outputs == {"top_title", "top_link", "top_reason", "offered_count"}
    assert set(config["labels"]["en"]["outputFieldLabels"]) == outputs
    inputs = {f["typeDefinition"]["name"] for f in config["inputFields"]}
    assert inputs == set(ExecutionRequest().fields["inputFields"].schema.fields)


def test_the_cards_dependencies_are_pinned_to_exact_versions_and_locked():
    package = load("cards/package.json")
    lock = load("cards/package-lock.json")
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", version), (name, version)
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    tooling = json.loads((TOOLING / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", v) for v in tooling.values())
