"""The OpenAPI document's lists of values (asset kinds, statuses, error codes) come from their one home."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from enablement.domain.assets import KINDS, STATUSES
from enablement.errors import error_kinds
from enablement.web.errors import documented_codes

ASSET_SCHEMAS = ("Asset", "AssetCreate", "AssetPatch", "AssetDetail", "RecommendedAsset")
API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def listed(phrase: str) -> list[str]:
    """The values of 'a, b or c' (any text in parentheses after it left out)."""
    return re.split(r", | or ", phrase.split(" (")[0])


def test_every_asset_schema_documents_exactly_the_domains_kinds_and_statuses(client):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    for name in ASSET_SCHEMAS:
        assert listed(schemas[name]["properties"]["kind"]["description"]) == list(KINDS), name
    for name in ("Asset", "AssetCreate", "AssetPatch", "AssetDetail"):
        assert listed(schemas[name]["properties"]["status"]["description"]) == list(STATUSES)


def test_the_error_code_is_documented_with_every_code_an_answer_can_carry(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    described = spec["components"]["schemas"]["ErrorBody"]["properties"]["code"]["description"]
    codes = re.search(r"\((.*)\)", described).group(1).split(", ")
    assert codes == list(documented_codes())
    assert {kind.code for kind in error_kinds()} | {"method_not_allowed", "internal_error"} == set(
        codes
    )
    unknown_route = client.get("/api/v1/no-such-thing").get_json()["error"]["code"]
    wrong_method = client.delete("/api/v1/openapi.json").get_json()["error"]["code"]
    assert {unknown_route, wrong_method} <= set(codes)


def test_every_code_in_the_api_guides_error_table_is_one_the_error_map_answers():
    table = API_DOC.read_text(encoding="utf-8").split("## Errors", 1)[1].split("\n## ", 1)[0]
    codes = set(re.findall(r"^\| \d{3} \| (.*?) \|", table, re.MULTILINE))
    in_table = {code for cell in codes for code in re.findall(r"`([a-z_]+)`", cell)}
    assert in_table and in_table <= set(documented_codes())


def test_a_new_asset_kind_or_error_kind_reaches_the_docs_without_editing_field_docs():
    # NOTE: a fresh interpreter adds both to their homes before field_docs is first imported,
    # the way a new entry in the source would be there.
    script = """
import enablement.domain.assets as assets
import enablement.errors as errors

assets.KINDS = assets.KINDS + ("newsletter",)

class TooEarly(errors.EnablementError):
    status = 425
    code = "too_early"

errors.TooEarly = TooEarly
from enablement.web.field_docs import describe

print(describe("AssetCreate", "kind"))
print(describe("RecommendedAsset", "kind"))
print(describe("ErrorBody", "code"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    create, recommended, code = done.stdout.splitlines()
    assert listed(create) == [*KINDS, "newsletter"]
    assert listed(recommended) == [*KINDS, "newsletter"]
    assert "too_early" in re.search(r"\((.*)\)", code).group(1).split(", ")
