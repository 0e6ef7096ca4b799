"""Typed settings from `WHOLEDOC_*` environment variables: the shared base every service's class extends.

Each service has one class: `api.settings.ApiSettings`, `workers.settings.WorkerSettings` (with the pipeline
settings the workers use) and `api.cli.settings.CliSettings`; the inference server keeps its own flags. A field
`foo_bar` is read from `WHOLEDOC_FOO_BAR`. `Settings.load()` reads the environment once and turns every bad value
into one `SettingsError` that names each variable, its value and the form it expects: an empty value is an error
(unset the variable to get its default), except where empty has a documented meaning (`EMPTY_OK`).

The defaults that live in the embedded data folder (`WHOLEDOC_HOME`: the SQLite database, the broker file, the blob
folder) are derived here, in `DataSettings`, and nowhere else.
"""

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import SettingsError, StorageError
from pipeline.storage.factory import parse_blob_url

PREFIX = "WHOLEDOC_"


def default_home() -> Path:
    return Path.home() / ".local" / "share" / "wholedoc"


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ****."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:****@{netloc[1]}"))


def _describe(cls: type["Settings"], exc: ValidationError) -> str:
    """One line per bad variable: `WHOLEDOC_X='value': what is wrong; expected <the field's description>`."""
    lines = []
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else ""
        field = cls.model_fields.get(name)
        value = err.get("input")
        what = err["msg"].removeprefix("Value error, ")
        shown = "" if isinstance(value, dict) else f"={value!r}"
        if field is not None and field.description:
            what += f"; expected {field.description}"
        lines.append(f"{PREFIX}{name.upper()}{shown}: {what}" if name else what)
    return f"invalid {cls.__name__} ({len(lines)} setting{'s' if len(lines) > 1 else ''}):\n  " + "\n  ".join(lines)


class Settings(BaseSettings):
    """The base: `WHOLEDOC_` prefix, immutable, every bad value reported at once by `load()`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", frozen=True, validate_default=True)

    EMPTY_OK: ClassVar[frozenset[str]] = frozenset()  # fields where an empty value means something

    @classmethod
    def load(cls, **values: Any) -> Self:
        """The environment's settings (`values` override it); SettingsError naming every bad variable."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(_describe(cls, exc)) from None

    @field_validator("*", mode="before")
    @classmethod
    def _not_empty(cls, value: Any, info) -> Any:
        if isinstance(value, str) and not value.strip() and info.field_name not in cls.EMPTY_OK:
            raise ValueError("empty (unset the variable to use its default)")
        return value

    @classmethod
    def variables(cls) -> list[str]:
        return [PREFIX + name.upper() for name in cls.model_fields]

    def effective(self) -> dict[str, tuple[str | None, bool]]:
        """Variable → (value as it may be shown: secrets and URL passwords masked, whether the environment set it)."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown = "****" if value.get_secret_value() else ""
            elif isinstance(value, str) and "://" in value:
                shown = mask_url(value)
            else:
                shown = None if value is None else str(value)
            env = PREFIX + name.upper()
            out[env] = (shown, any(k.upper() == env for k in os.environ))
        return out


def _url(value: str | None, schemes: tuple[str, ...], form: str) -> str | None:
    if value is not None and urlsplit(value).scheme not in schemes:
        raise ValueError(f"not {form}")
    return value


class DataSettings(Settings):
    """Where the records, blobs and task queue live, and how the process logs; what every service reads."""

    home: Path = Field(default_factory=default_home,
                       description="a folder: the embedded mode's data (SQLite files, blobs, logs)")
    database_url: str | None = Field(None, description="a SQLAlchemy URL: postgresql+psycopg://… or sqlite:///FILE "
                                                       "(default: sqlite in WHOLEDOC_HOME)")
    blob_url: str | None = Field(None, description="file:///FOLDER or s3://BUCKET?endpoint=HOST:PORT[&secure=0]"
                                                   " (default: WHOLEDOC_HOME/blobs)")
    s3_access_key: SecretStr | None = Field(None, description="the S3 access key (unless the blob URL has one)")
    s3_secret_key: SecretStr | None = Field(None, description="the S3 secret key (unless the blob URL has one)")
    broker_url: str | None = Field(None, description="the Celery broker: redis://HOST:PORT/DB (default: kombu's "
                                                     "SQLAlchemy transport on a SQLite file in WHOLEDOC_HOME)")
    max_model_len: int | None = Field(None, ge=2, description="tokens, a whole number >= 2: the model's window the "
                                                              "pipeline plans for when the endpoint does not report "
                                                              "one (default: DeepSeek-V4's 1,048,576; embedded mode "
                                                              "also starts its inference server with it)")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="debug|info|warning|error")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto|json|console (auto: readable on a terminal, JSON lines otherwise)")
    webhook_allow_private: bool = Field(False, description="1 or 0: let webhooks reach loopback, private and "
                                                            "link-local addresses (a private network, tests)")
    digest_min_interval: float = Field(900.0, gt=0, description="seconds, > 0: the shortest interval a digest "
                                                                "schedule's cron may fire at (default 900: 15 min)")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql", "sqlite")):
            raise ValueError("not a PostgreSQL or SQLite URL")
        return value

    @field_validator("blob_url")
    @classmethod
    def _blob(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_blob_url(value)
            except StorageError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("not a URL")
        return value

    @model_validator(mode="after")
    def _home_defaults(self) -> Self:
        """The defaults inside WHOLEDOC_HOME (the one place they are built); the folder is made when one is used."""
        home = self.home.expanduser()
        derived = {"database_url": f"sqlite:///{home / 'wholedoc.sqlite'}", "blob_url": f"file://{home / 'blobs'}",
                   "broker_url": f"sqla+sqlite:///{home / 'broker.sqlite'}"}
        object.__setattr__(self, "home", home)
        for name, value in derived.items():
            if getattr(self, name) is None:
                home.mkdir(parents=True, exist_ok=True)
                object.__setattr__(self, name, value)
        return self

    def blob_store(self):
        from pipeline.storage import blob_store_from_url

        secret = lambda s: s.get_secret_value() if s else None
        return blob_store_from_url(self.blob_url, access_key=secret(self.s3_access_key),
                                   secret_key=secret(self.s3_secret_key))


def http_url(value: str | None) -> str | None:
    """A validator for an http(s) URL setting."""
    return _url(value, ("http", "https"), "an http:// or https:// URL")
