"""Tenants and API keys: only hashes are stored, and only the exact live key authenticates."""

import hashlib

import pytest

from pipeline.errors import Conflict
from pipeline.records.db import transaction
from pipeline.records.models import ApiKey, new_id
from pipeline.records.tenants import authenticate, create_api_key, create_tenant, get_tenant, revoke_api_key


def test_key_authenticates_its_tenant_and_is_stored_hashed(db):
    with transaction(db) as s:
        tenant = create_tenant(s, f"acme-{new_id()}")
        row, key = create_api_key(s, tenant.id, name="ci")
    assert key.startswith(f"wd_{row.prefix}_") and len(key) > 40
    with transaction(db) as s:
        stored = s.get(ApiKey, row.id)
        assert stored.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (stored.key_sha256, stored.prefix, stored.name)
        assert authenticate(s, key).id == tenant.id


@pytest.mark.parametrize("mangle", [lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), lambda k: k + "x",
                                    lambda k: "", lambda k: "wd__", lambda k: k.replace("wd_", "xx_"),
                                    lambda k: "wd_" + "0" * 12 + "_" + k.split("_", 2)[2]])
def test_wrong_keys_do_not_authenticate(db, mangle):
    with transaction(db) as s:
        tenant = create_tenant(s, f"acme-{new_id()}")
        _, key = create_api_key(s, tenant.id)
    with transaction(db) as s:
        assert authenticate(s, mangle(key)) is None


def test_revoked_key_stops_working(db):
    with transaction(db) as s:
        tenant = create_tenant(s, f"acme-{new_id()}")
        row, key = create_api_key(s, tenant.id)
    with transaction(db) as s:
        revoke_api_key(s, tenant.id, row.prefix)
    with transaction(db) as s:
        assert authenticate(s, key) is None


def test_duplicate_tenant_name_is_a_conflict(db):
    name = f"dup-{new_id()}"
    with transaction(db) as s:
        create_tenant(s, name)
    with transaction(db) as s:
        with pytest.raises(Conflict, match="already exists"):
            create_tenant(s, name)
        assert get_tenant(s, name).name == name
