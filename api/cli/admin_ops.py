"""What `wholedoc admin` does, against the database directly (imported only when an admin command runs, so the
parser builds without SQLAlchemy)."""

import sys

from api.cli.settings import CliSettings
from pipeline.errors import RecordError
from pipeline.records.db import make_engine, session_factory, transaction, upgrade
from pipeline.records.tenants import create_api_key, create_tenant, get_tenant, revoke_api_key


def sessions():
    url = CliSettings.load().database_url
    upgrade(url)
    return session_factory(make_engine(url))


def migrate(args) -> int:
    upgrade(CliSettings.load().database_url)
    print("database is at the latest schema")
    return 0


def create_tenant_cmd(args) -> int:
    try:
        with transaction(sessions()) as s:
            tenant = create_tenant(s, args.name)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"tenant {tenant.name} id={tenant.id}")
    return 0


def create_key(args) -> int:
    try:
        with transaction(sessions()) as s:
            tenant = get_tenant(s, args.tenant)
            row, key = create_api_key(s, tenant.id, name=args.name)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"# API key for tenant {tenant.name} (prefix {row.prefix}); it is shown only this once", file=sys.stderr)
    print(key)
    return 0


def revoke_key(args) -> int:
    try:
        with transaction(sessions()) as s:
            revoke_api_key(s, get_tenant(s, args.tenant).id, args.prefix)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"revoked key {args.prefix}")
    return 0
