"""Both CRMs implement the Crm interface: every method, with a compatible signature and the same types."""

from __future__ import annotations

import inspect
import typing

import pytest

from enablement.domain.crm import Crm
from integrations.hubspot.client import HubSpotCrm
from integrations.memory import InMemoryCrm
from tests.integrations.fake_hubspot import TOKEN

METHODS = sorted(name for name, v in vars(Crm).items() if callable(v) and not name.startswith("_"))
IMPLEMENTATIONS = [HubSpotCrm, InMemoryCrm]


def test_the_interface_holds_the_methods_the_sync_and_the_nudges_need():
    assert METHODS == [
        "call_counts",
        "create_note",
        "create_task",
        "fetch_deals",
        "fetch_pipelines",
        "find_note",
        "find_task",
        "iter_all_deals",
        "iter_deal_ids",
        "iter_deals_modified_between",
        "iter_owners",
    ]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", METHODS)
def test_each_implementation_has_every_method_with_a_compatible_signature(implementation, name):
    wanted = inspect.signature(getattr(Crm, name))
    method = getattr(implementation, name, None)
    assert callable(method), f"{implementation.__name__} has no {name}"
    given = inspect.signature(method)
    wanted_params = list(wanted.parameters.values())[1:]  # without self
    given_params = list(given.parameters.values())[1:]
    assert len(given_params) >= len(wanted_params)
    for want, have in zip(wanted_params, given_params, strict=False):
        assert (have.name, have.kind) == (want.name, want.kind)
        if want.default is not inspect.Parameter.empty:
            assert have.default == want.default
    for extra in given_params[len(wanted_params) :]:  # callers of the interface never pass these
        assert extra.default is not inspect.Parameter.empty
    wanted_types = typing.get_type_hints(getattr(Crm, name))
    given_types = typing.get_type_hints(method)
    assert {k: given_types.get(k) for k in wanted_types} == wanted_types


@pytest.mark.parametrize(
    "crm",
    [HubSpotCrm(TOKEN, "http://127.0.0.1:9"), InMemoryCrm()],
    ids=lambda c: type(c).__name__,
)
def test_each_implementation_is_a_crm(crm):
    assert isinstance(crm, Crm)
    assert crm.call_counts().calls == 0
