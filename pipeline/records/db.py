"""Where the records live: the database URL, engines, sessions, and migrating a database to head."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def wholedoc_home() -> Path:
    """The embedded mode's data folder (`WHOLEDOC_HOME`, default ~/.local/share/wholedoc)."""
    home = os.environ.get("WHOLEDOC_HOME") or Path.home() / ".local" / "share" / "wholedoc"
    return Path(home)


def database_url() -> str:
    """`WHOLEDOC_DATABASE_URL`, else a SQLite file in the embedded data folder."""
    url = os.environ.get("WHOLEDOC_DATABASE_URL")
    if url:
        return url
    home = wholedoc_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'wholedoc.sqlite'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers (api) don't block the writer (worker)
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """An engine for `url` (default `database_url()`); SQLite gets foreign keys, WAL and a busy timeout."""
    url = url or database_url()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str):
    """An Alembic config pointing at our migrations, for `url` (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database at `url` (default `database_url()`) to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(url or database_url()), revision)
