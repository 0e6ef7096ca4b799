"""Each service's settings class (API, workers, command line): bad values stop the process at start with the
variable named; `wholedoc config` shows the effective settings with every secret masked."""

import json
import os
import subprocess
import sys

import pytest

from api.settings import ApiSettings
from pipeline.errors import SettingsError
from tests.helpers.services import BIN, ROOT
from workers.settings import WorkerSettings


def _clean_env(home, **values) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("WHOLEDOC_")}
    return env | {"WHOLEDOC_HOME": str(home)} | {f"WHOLEDOC_{k.upper()}": v for k, v in values.items()}


@pytest.mark.parametrize("cls, values, named", [
    # the two the issue measured: "invalid literal for int()" and an AssertionError before
    (ApiSettings, {"max_upload_bytes": ""}, "WHOLEDOC_MAX_UPLOAD_BYTES='': empty"),
    (ApiSettings, {"rate_burst": "0"}, "WHOLEDOC_RATE_BURST='0': Input should be greater than or equal to 1; "
                                       "expected requests, a whole number >= 1"),
    (ApiSettings, {"redis_url": "http://x"}, "WHOLEDOC_REDIS_URL='http://x': not a redis://"),
    (WorkerSettings, {"lease_seconds": "soon"}, "WHOLEDOC_LEASE_SECONDS='soon'"),
    (WorkerSettings, {"inference_url": "127.0.0.1:8000/v1"}, "not an http:// or https:// URL"),
])
def test_a_bad_value_names_the_variable_and_the_form(monkeypatch, tmp_path, cls, values, named):
    for name, value in _clean_env(tmp_path, **values).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="expected") as err:
        cls.load()
    assert named in str(err.value)


def test_an_empty_cache_salt_secret_means_no_salt(monkeypatch, tmp_path):
    monkeypatch.setenv("WHOLEDOC_CACHE_SALT_SECRET", "")
    assert WorkerSettings.load(home=tmp_path).cache_salt("t") is None


def test_the_api_process_refuses_to_start_on_a_bad_value(tmp_path):
    r = subprocess.run([str(BIN / "uvicorn"), "api.main:create_app", "--factory", "--port", "1"], cwd=ROOT,
                       env=_clean_env(tmp_path, max_upload_bytes="", rate_burst="0"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "WHOLEDOC_MAX_UPLOAD_BYTES=''" in r.stderr and "WHOLEDOC_RATE_BURST='0'" in r.stderr


def test_wholedoc_config_prints_effective_settings_with_secrets_masked(tmp_path):
    secrets = {"api_key": "wd_abc_cli-secret", "cache_salt_secret": "salt-secret", "s3_secret_key": "s3-secret",
               "database_url": "postgresql+psycopg://app:db-secret@db:5432/wd", "inference_api_key": "llm-secret"}
    env = _clean_env(tmp_path, rate_per_min="60", **secrets)
    r = subprocess.run([sys.executable, "-m", "api.cli", "config"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert not [s for s in ("cli-secret", "salt-secret", "s3-secret", "db-secret", "llm-secret") if s in r.stdout]
    lines = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert "postgresql+psycopg://app:****@db:5432/wd  [environment; api, worker, cli]" in lines["WHOLEDOC_DATABASE_URL"]
    assert "60.0  [environment; api]" in lines["WHOLEDOC_RATE_PER_MIN"]
    assert f"file://{tmp_path}/blobs  [default; api, worker, cli]" in lines["WHOLEDOC_BLOB_URL"]  # derived from home
    r = subprocess.run([sys.executable, "-m", "api.cli", "config", "--json"], env=env, capture_output=True,
                       text=True, timeout=60)
    table = json.loads(r.stdout)
    assert table["WHOLEDOC_CACHE_SALT_SECRET"] == {"value": "****", "source": "environment", "used_by": ["worker"]}
    r = subprocess.run([sys.executable, "-m", "api.cli", "config"], env=env | {"WHOLEDOC_LEASE_SECONDS": "-1"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "WHOLEDOC_LEASE_SECONDS='-1'" in r.stderr
