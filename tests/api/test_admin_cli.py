"""`wholedoc admin` as a subprocess: the printed key is the only copy, and it authenticates its tenant."""

import os
import subprocess
import sys

from pipeline.records.db import make_engine, session_factory
from pipeline.records.tenants import authenticate


def _admin(env, *args):
    return subprocess.run([sys.executable, "-m", "api.cli", "admin", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_create_tenant_and_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'admin.sqlite'}"
    env = {"WHOLEDOC_DATABASE_URL": url}
    r = _admin(env, "create-tenant", "acme")
    assert r.returncode == 0 and r.stdout.startswith("tenant acme id="), r.stderr
    again = _admin(env, "create-tenant", "acme")
    assert again.returncode == 1 and "already exists" in again.stderr
    r = _admin(env, "create-key", "acme", "--name", "ci")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("wd_") and "shown only this once" in r.stderr
    engine = make_engine(url)
    with session_factory(engine)() as s:
        assert authenticate(s, key).name == "acme"
    engine.dispose()
    missing = _admin(env, "create-key", "nobody")
    assert missing.returncode == 1 and "no tenant named 'nobody'" in missing.stderr
    prefix = key.split("_")[1]
    assert _admin(env, "revoke-key", "acme", prefix).returncode == 0
    engine = make_engine(url)
    with session_factory(engine)() as s:
        assert authenticate(s, key) is None
    engine.dispose()
    assert "no API key" in _admin(env, "revoke-key", "acme", "000000000000").stderr
