"""`wholedoc admin`: create tenants and API keys, migrate the database (WHOLEDOC_DATABASE_URL)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("admin", help="manage tenants and API keys (talks to the database directly)")
    sub = parser.add_subparsers(dest="admin_command", required=True)
    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=_op("migrate"))
    p = sub.add_parser("create-tenant", help="add a tenant")
    p.add_argument("name", help="a unique name for the tenant")
    p.set_defaults(func=_op("create_tenant_cmd"))
    p = sub.add_parser("create-key", help="make an API key for a tenant; the key is printed once, never stored")
    p.add_argument("tenant", help="tenant name or id")
    p.add_argument("--name", help="a label for the key")
    p.set_defaults(func=_op("create_key"))
    p = sub.add_parser("revoke-key", help="revoke a key by its visible prefix (the part after wd_)")
    p.add_argument("tenant", help="tenant name or id")
    p.add_argument("prefix", help="the key's visible prefix, as create-key printed it")
    p.set_defaults(func=_op("revoke_key"))


def _op(name: str):
    """The handler `name` of api.cli.admin_ops, imported when the command runs."""

    def run(args) -> int:
        from api.cli import admin_ops

        return getattr(admin_ops, name)(args)

    return run

