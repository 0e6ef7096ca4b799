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
                "WHOLEDOC_CACHE_SALT_SECRET", "WHOLEDOC_SESSION_SECRET"):
        assert re.search(r"\$\{" + var + r":\?", text), var


def test_every_secret_setting_with_a_public_default_is_required_and_in_the_env_example():
    """A secret whose code default is a public string (the cache salt's, the web session's) must be set on a
    deployment: compose refuses to start without it, and .env.example says how to make one."""
    from pydantic import SecretStr

    from api.settings import ApiSettings
    from workers.settings import WorkerSettings

    defaulted = {f"WHOLEDOC_{name.upper()}" for cls in (ApiSettings, WorkerSettings)
                 for name, field in cls.model_fields.items() if isinstance(field.default, SecretStr)}
    assert {"WHOLEDOC_CACHE_SALT_SECRET", "WHOLEDOC_SESSION_SECRET"} <= defaulted
    text = (ROOT / "compose.yaml").read_text()
    example = (ROOT / ".env.example").read_text()
    api_env = SERVICES["api"]["environment"]
    for var in sorted(defaulted):
        assert api_env.get(var) == "${" + var + ":?Variable not set}", var
        assert re.search(r"\$\{" + var + r":\?", text) and re.search(rf"^{var}=$", example, flags=re.M), var
        assert "openssl rand" in example.split(f"\n{var}=")[0].splitlines()[-1], var  # the comment just above it


class _Loader(yaml.SafeLoader):
    """compose's merge tags (`!override`, `!reset`) read as the plain value they carry."""


for _tag in ("!override", "!reset"):
    _Loader.add_constructor(_tag, lambda loader, node: (
        loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
        else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_scalar(node)))
EXTERNAL_TEXT = (ROOT / "compose.external.yaml").read_text()
EXTERNAL = yaml.load(EXTERNAL_TEXT, Loader=_Loader)
LONG_RUNNING = ("postgres", "redis", "minio", "inference", "api", "worker", "beat")


def test_long_running_services_restart_and_the_app_services_have_healthchecks():
    for name in LONG_RUNNING:
        assert SERVICES[name].get("restart") == "unless-stopped", name
    assert SERVICES["migrate"].get("restart") == "on-failure"  # a one-shot must not loop once it succeeded
    for name in ("postgres", "redis", "minio", "inference", "api", "worker"):
        assert SERVICES[name]["healthcheck"]["test"], name
    assert "/health" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(SERVICES["worker"]["healthcheck"]["test"])


def test_queued_tasks_and_blobs_live_on_volumes_and_images_are_pinned():
    assert any(v.startswith("redisdata:") for v in SERVICES["redis"]["volumes"]) and "redisdata" in COMPOSE["volumes"]
    assert "--appendonly" in SERVICES["redis"]["command"]
    for name in ("postgres", "redis", "minio"):
        image = SERVICES[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", SERVICES["minio"]["image"])


def test_env_example_names_every_required_variable():
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "compose.yaml").read_text() + EXTERNAL_TEXT))
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#?\s*(\w+)=", example, flags=re.M))
    assert required and sorted(required - named) == []


def test_the_external_endpoint_override_drops_the_gpu_service_and_the_worker_waits_for_nothing_else():
    svc = EXTERNAL["services"]
    assert svc["inference"]["profiles"] == ["gpu"]  # not started by a plain `up`
    assert "inference" not in svc["worker"]["depends_on"]
    assert set(svc["worker"]["depends_on"]) == set(SERVICES["worker"]["depends_on"]) - {"inference"}
    assert "depends_on: !override" in EXTERNAL_TEXT  # merged files would otherwise add the entries back
    for name in ("api", "worker", "beat"):
        env = svc[name]["environment"]
        assert {"WHOLEDOC_INFERENCE_URL", "WHOLEDOC_INFERENCE_API_KEY", "WHOLEDOC_MODEL"} <= set(env), name


def test_images_build_from_a_small_context_and_the_inference_image_can_compile_triton():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".venv", ".venv-service", "ckpt", "checkpoints", "var", ".git"):
        assert path in ignored, path
    dockerfile = (ROOT / "deploy" / "inference.Dockerfile").read_text()
    assert "build-essential" in dockerfile and "python3-dev" in dockerfile
