"""`wholedoc admin`: create tenants and API keys, migrate the database (WHOLEDOC_DATABASE_URL)."""

import sys

from api.cli.settings import CliSettings
from pipeline.errors import RecordError
from pipeline.records.db import make_engine, session_factory, transaction, upgrade
from pipeline.records.tenants import create_api_key, create_tenant, get_tenant, revoke_api_key


def register(subparsers) -> None:
    parser = subparsers.add_parser("admin", help="manage tenants and API keys (talks to the database directly)")
    sub = parser.add_subparsers(dest="admin_command", required=True)
    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("create-tenant", help="add a tenant")
    p.add_argument("name")
    p.set_defaults(func=_create_tenant)
    p = sub.add_parser("create-key", help="make an API key for a tenant; the key is printed once, never stored")
    p.add_argument("tenant", help="tenant name or id")
    p.add_argument("--name", help="a label for the key")
    p.set_defaults(func=_create_key)
    p = sub.add_parser("revoke-key", help="revoke a key by its visible prefix (the part after wd_)")
    p.add_argument("tenant", help="tenant name or id")
    p.add_argument("prefix")
    p.set_defaults(func=_revoke_key)


def _sessions():
    url = CliSettings.load().database_url
    upgrade(url)
    return session_factory(make_engine(url))


def _migrate(args) -> int:
    upgrade(CliSettings.load().database_url)
    print("database is at the latest schema")
    return 0


def _create_tenant(args) -> int:
    try:
        with transaction(_sessions()) as s:
            tenant = create_tenant(s, args.name)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"tenant {tenant.name} id={tenant.id}")
    return 0


def _create_key(args) -> int:
    try:
        with transaction(_sessions()) as s:
            tenant = get_tenant(s, args.tenant)
            row, key = create_api_key(s, tenant.id, name=args.name)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"# API key for tenant {tenant.name} (prefix {row.prefix}); it is shown only this once", file=sys.stderr)
    print(key)
    return 0


def _revoke_key(args) -> int:
    try:
        with transaction(_sessions()) as s:
            revoke_api_key(s, get_tenant(s, args.tenant).id, args.prefix)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"revoked key {args.prefix}")
    return 0
