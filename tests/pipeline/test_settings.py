"""The shared settings base (pipeline.settings): WHOLEDOC_* variables, one error naming every bad one with the form
it expects, the embedded defaults derived from WHOLEDOC_HOME in one place, secrets masked when shown."""

import pytest

from pipeline.errors import SettingsError
from pipeline.settings import DataSettings, mask_url


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean WHOLEDOC_* environment with WHOLEDOC_HOME in tmp_path; returns a setter."""
    import os

    for name in [k for k in os.environ if k.upper().startswith("WHOLEDOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WHOLEDOC_HOME", str(tmp_path / "home"))
    return lambda **values: [monkeypatch.setenv(f"WHOLEDOC_{k.upper()}", v) for k, v in values.items()]


def test_every_bad_variable_is_named_with_its_value_and_the_form_it_expects(env):
    env(database_url="", blob_url="s3://bucket", log_level="loud", broker_url="localhost")
    with pytest.raises(SettingsError) as err:
        DataSettings.load()
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid DataSettings (4 settings):"
    found = {line.split("=", 1)[0].strip(): line for line in lines[1:]}
    assert set(found) == {"WHOLEDOC_DATABASE_URL", "WHOLEDOC_BLOB_URL", "WHOLEDOC_LOG_LEVEL", "WHOLEDOC_BROKER_URL"}
    assert "=''" in found["WHOLEDOC_DATABASE_URL"] and "empty" in found["WHOLEDOC_DATABASE_URL"]
    assert "?endpoint=host:port" in found["WHOLEDOC_BLOB_URL"]
    assert "expected debug|info|warning|error" in found["WHOLEDOC_LOG_LEVEL"]
    assert all("expected" in line for line in found.values())


def test_the_embedded_defaults_are_built_from_home(env, tmp_path):
    env()
    s = DataSettings.load()
    home = tmp_path / "home"
    assert (s.home, s.database_url, s.blob_url, s.broker_url) == (
        home, f"sqlite:///{home}/wholedoc.sqlite", f"file://{home}/blobs", f"sqla+sqlite:///{home}/broker.sqlite")
    assert home.is_dir()
    env(blob_url="s3://b?endpoint=minio:9000&secure=0", log_level="WARNING")
    s = DataSettings.load()
    assert (s.blob_url, s.database_url, s.log_level) == ("s3://b?endpoint=minio:9000&secure=0",
                                                         f"sqlite:///{home}/wholedoc.sqlite", "warning")


def test_secrets_and_url_passwords_are_masked_when_shown(env):
    env(database_url="postgresql+psycopg://app:hunter2@db:5432/wd", s3_secret_key="s3-very-secret",
        blob_url="s3://key:blobpass@b?endpoint=m:9000")
    shown = DataSettings.load().effective()
    assert shown["WHOLEDOC_DATABASE_URL"] == ("postgresql+psycopg://app:****@db:5432/wd", True)
    assert shown["WHOLEDOC_S3_SECRET_KEY"] == ("****", True)
    assert shown["WHOLEDOC_S3_ACCESS_KEY"] == (None, False)
    assert "blobpass" not in str(shown) and "hunter2" not in str(shown) and "s3-very-secret" not in str(shown)
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"
