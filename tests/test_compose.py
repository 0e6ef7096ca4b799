"""compose.yaml matches the code: docs/architecture.md's processes, modules that exist, settings the code reads."""

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_the_processes_of_the_architecture_are_there():
    assert {"api", "worker", "beat", "inference", "postgres", "redis", "minio"} <= set(SERVICES)


def _modules(command: list[str]) -> list[str]:
    """The Python modules a service command runs: `python -m M`, `uvicorn M:app`, `celery -A M`."""
    out = []
    for flag, arg in zip(command, command[1:]):
        if flag in ("-m", "-A"):
            out.append(arg)
    if command[0] == "uvicorn":
        out.append(command[1].split(":")[0])
    return out


def test_every_module_a_service_runs_exists():
    ran = [m for svc in SERVICES.values() if "build" in svc for m in _modules(svc["command"])]
    assert {"inference.serve", "api.main", "workers.app", "pipeline.records.migrate"} <= set(ran)
    for module in ran:
        assert importlib.util.find_spec(module) is not None, module


def test_every_setting_compose_passes_is_a_field_of_a_settings_class():
    """A typo or a removed setting in compose.yaml would be silently ignored by the processes: catch it here."""
    from api.cli.settings import CliSettings
    from api.settings import ApiSettings
    from workers.settings import WorkerSettings

    known = {v for cls in (ApiSettings, WorkerSettings, CliSettings) for v in cls.variables()}
    env = {k for svc in SERVICES.values() if isinstance(svc.get("environment"), dict) for k in svc["environment"]}
    ours = {k for k in env if k.startswith("WHOLEDOC_")}
    assert ours, "compose passes no wholedoc settings"
    assert sorted(ours - known) == []


def test_secrets_fail_fast_when_unset():
    text = (ROOT / "compose.yaml").read_text()
    for var in ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "WHOLEDOC_CHECKPOINT",
                "WHOLEDOC_CACHE_SALT_SECRET"):
        assert re.search(r"\$\{" + var + r":\?", text), var
