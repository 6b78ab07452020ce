"""Settings from the environment and `.env`, with clear errors for bad values."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_contracts():
    settings = load_settings({}, env_file=None)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.error_channel == "tickstock:errors"
    assert settings.database_url == "sqlite:///data/errors.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8050)
    assert settings.log_file_enabled is False
    assert settings.log_file_path == "logs/tickstock_errors.log"
    assert (settings.log_file_max_size, settings.log_file_backup_count) == (10485760, 5)
    assert settings.store_min_severity == "warning"
    assert settings.retention_days == 30
    assert settings.ring_buffer_size == 2000


def test_environment_wins_over_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9000\nERROR_CHANNEL=from:file\nLOG_FILE_ENABLED=true\n")
    settings = load_settings({"PORT": "9100"}, env_file=env_file)
    assert settings.port == 9100
    assert settings.error_channel == "from:file"
    assert settings.log_file_enabled is True


@pytest.mark.parametrize("name, value, message", [
    ("PORT", "eighty", "PORT must be a whole number, got 'eighty'"),
    ("PORT", "70000", "PORT must be from 1 to 65535"),
    ("LOG_FILE_ENABLED", "maybe", "LOG_FILE_ENABLED must be true or false"),
    ("STORE_MIN_SEVERITY", "loud", "STORE_MIN_SEVERITY must be one of"),
    ("RING_BUFFER_SIZE", "0", "RING_BUFFER_SIZE must be at least 1"),
])
def test_bad_values_say_which_setting_and_why(name, value, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings({name: value}, env_file=None)


def test_postgres_scheme_alias_is_accepted():
    settings = load_settings({"DATABASE_URL": "postgres://u:p@db/errors"}, env_file=None)
    assert settings.sqlalchemy_url == "postgresql://u:p@db/errors"


def test_env_example_lists_every_setting_with_its_default():
    text = (ROOT / ".env.example").read_text()
    listed = dict(re.findall(r"^#?\s*([A-Z_]+)=(.*)$", text, flags=re.M))
    defaults = Settings()
    for field in fields(Settings):
        name = field.name.upper()
        assert name in listed, f"{name} is missing from .env.example"
        value = getattr(defaults, field.name)
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert listed[name] == shown, f"{name}: .env.example says {listed[name]!r}"
