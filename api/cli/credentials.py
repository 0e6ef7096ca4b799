"""The embedded deployment's credentials: the `local` tenant and its API key, kept in the data folder."""

from pathlib import Path

from pipeline.errors import NotFound
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.tenants import authenticate, create_api_key, create_tenant, get_tenant

LOCAL_TENANT = "local"


def local_key(home: Path, database_url: str) -> str:
    """The embedded deployment's key for the `local` tenant, kept (mode 600) in the data folder."""
    path = home / "local.key"
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        if path.exists():
            key = path.read_text().strip()
            with sessions() as s:
                if authenticate(s, key) is not None:
                    return key
        with transaction(sessions) as s:
            try:
                tenant = get_tenant(s, LOCAL_TENANT)
            except NotFound:
                tenant = create_tenant(s, LOCAL_TENANT)
            _, key = create_api_key(s, tenant.id, name="embedded")
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key
    finally:
        engine.dispose()
