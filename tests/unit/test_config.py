"""Settings come only from the environment, with clear errors for bad values."""

import pytest

from enablement.config import Settings, parse_rate_limit
from enablement.errors import InvalidInput


def test_defaults_put_the_database_and_secret_in_the_instance_folder(tmp_path):
    settings = Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path}/enablement.db"
    assert len(settings.secret_key) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    again = Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path)})
    assert again.secret_key == settings.secret_key


def test_environment_values_are_read(tmp_path):
    settings = Settings.from_env(
        {
            "ENABLEMENT_INSTANCE_PATH": str(tmp_path),
            "DATABASE_URL": "postgresql+psycopg://u@h/db",
            "SECRET_KEY": "s3cret",
            "PUBLIC_BASE_URL": "https://enable.example.com/",
            "HUBSPOT_RATE_LIMIT": "190/10s",
            "HUBSPOT_WRITEBACK": "notes",
            "RECOMMENDATION_HOLDOUT": "0.1",
            "PRODUCT_TERMS": "Acme Cloud, Acme Insights ,",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.secret_key == "s3cret"
    assert settings.public_base_url == "https://enable.example.com"
    assert settings.hubspot_rate_limit == (190, 10.0)
    assert settings.hubspot_writeback == "notes"
    assert settings.recommendation_holdout == 0.1
    assert settings.product_terms == ("Acme Cloud", "Acme Insights")


@pytest.mark.parametrize("text", ["", "100", "100/0s", "0/10s", "ten/10s", "100/10m"])
def test_a_bad_rate_limit_is_a_clear_error(text):
    with pytest.raises(InvalidInput, match="HUBSPOT_RATE_LIMIT"):
        parse_rate_limit(text)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECOMMENDATION_HOLDOUT", "1.5"),
        ("RECOMMENDATION_HOLDOUT", "a lot"),
        ("HUBSPOT_WRITEBACK", "yes"),
    ],
)
def test_bad_values_name_their_variable(tmp_path, name, value):
    with pytest.raises(InvalidInput, match=name):
        Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path), name: value})
