"""Migrations match the models, `enablement init` upgrades, and an outdated schema is refused clearly."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from enablement import create_app, db
from enablement.config import Settings
from enablement.db.models import Base
from enablement.errors import SchemaOutdated


def test_the_migrations_produce_exactly_the_models_schema(container):
    with container.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


@pytest.fixture
def empty_settings(tmp_path) -> Settings:
    return Settings(
        instance_path=tmp_path / "instance", secret_key="k", testing=True
    ).with_overrides()


def test_the_server_refuses_to_start_on_an_empty_database(empty_settings):
    with pytest.raises(SchemaOutdated, match="enablement init"):
        create_app(empty_settings)


def test_init_creates_the_schema_and_then_the_server_starts(empty_settings):
    from tests.conftest import Cli

    app = create_app(empty_settings, check_schema=False)
    result = Cli(app)("init")
    assert result.exit_code == 0, result.stderr
    assert "upgraded from empty" in result.stdout
    assert Cli(app)("init").stdout.startswith("schema is current")
    create_app(empty_settings)  # does not raise
    app.extensions["enablement"].engine.dispose()


def test_commands_that_need_the_schema_exit_1_with_a_hint(empty_settings):
    from tests.conftest import Cli

    app = create_app(empty_settings, check_schema=False)
    result = Cli(app)("tokens", "list")
    assert result.exit_code == 1
    assert "run `enablement init`" in result.stderr
    assert "Traceback" not in result.stderr
    app.extensions["enablement"].engine.dispose()


def test_readyz_reports_the_database(client):
    assert client.get("/readyz").get_json() == {"status": "ok"}


def test_the_current_revision_is_head_after_migrations(container):
    assert db.current_revision(container.engine) == db.head_revision()
