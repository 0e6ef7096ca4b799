"""A new tenant with a live API key, and an HTTP client of the API that uses it (docs/api-conventions.md: every
route is scoped to the key's tenant, so each test module works as a tenant of its own)."""

import httpx

from pipeline.records.db import transaction
from pipeline.records.models import Tenant, new_id
from pipeline.records.tenants import create_api_key, create_tenant


def tenant_key(records, prefix: str) -> tuple[Tenant, str]:
    """A new tenant named `prefix`-<random> and a live API key of it: (tenant, key)."""
    with transaction(records) as s:
        tenant = create_tenant(s, f"{prefix}-{new_id()}")
        _, key = create_api_key(s, tenant.id)
    return tenant, key


def tenant_client(records, base_url: str, prefix: str, timeout: float = 60) -> httpx.Client:
    """An httpx client of the API at `base_url` with a new tenant's key (`client.tenant_id` and `client.key` set)."""
    tenant, key = tenant_key(records, prefix)
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
    client.tenant_id, client.key = tenant.id, key
    return client
