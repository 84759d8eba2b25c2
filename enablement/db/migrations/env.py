"""Alembic environment: runs migrations on the engine handed over by enablement.db."""

from alembic import context

from enablement.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on the engine the caller passed in config.attributes."""
    engine = config.attributes.get("engine")
    if engine is None:
        from enablement.config import Settings
        from enablement.db import make_engine

        engine = make_engine(Settings.from_env().with_overrides().database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
