"""The one layering rule (docs/architecture.md), checked by parsing every import of our packages; and inside api/, the
HTTP service never imports the command line (api/cli/), which reaches the service over HTTP or as processes."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"kernels", "inference", "pipeline", "workers", "api"}

# package -> (our packages it may import, third-party top-level modules it must not import)
RULES = {
    "kernels": (set(), {"transformers", "fastapi", "celery", "sqlalchemy", "httpx"}),
    "inference": ({"kernels"}, {"celery", "sqlalchemy"}),
    "pipeline": (set(), {"torch", "triton", "celery", "fastapi", "starlette", "uvicorn", "transformers"}),
    "workers": ({"pipeline"}, {"torch", "triton", "fastapi", "starlette", "transformers"}),
    "api": ({"pipeline", "workers"}, {"torch", "triton", "transformers"}),
}
# api may reach workers only through the Celery app (task names), never task code.
ALLOWED_MODULES = {"api": {"workers": {"workers", "workers.app"}}}
# package -> its subpackage that the rest of the package never imports: api's HTTP modules never import the CLI.
SEPARATE = {"api": "api.cli"}
# Entry points and benchmarks (`python -m <name>`): they import the library, the library never imports them.
ENTRY_POINTS = {
    "inference": {"inference.serve", "inference.generate", "inference.devcheckpoint", "inference.bench",
                  "inference.bench_profile",
                  "inference.bench_forward", "inference.server.bench_server", "inference.bench_prefix_store"},
    "kernels": {"kernels.bench", "kernels.bench_head", "kernels.gpu_check"},
    "pipeline": {"pipeline.bench", "pipeline.bench_pack", "pipeline.bench_pdf", "pipeline.prompts.bench"},
    "api": {"api.bench_overhead"},
    "workers": set(),
}


def _package_of(path: Path) -> list[str]:
    """The package a file's relative imports start from: `api/routes/x.py` → api.routes (an __init__.py: its own)."""
    return list(path.relative_to(ROOT).parent.parts)


def _imports(path: Path, with_names: bool = False) -> list[tuple[str, int]]:
    """Absolute module names imported by one file (outside `if TYPE_CHECKING:` blocks); relative imports resolved.

    with_names: `from m import a` also yields `m.a` (a may be a submodule: `from api import cli`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = _package_of(path)
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if module:
                found.append((module, node.lineno))
            if with_names or not node.module:  # `from . import x` imports the module x
                found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _violations(package: str) -> list[str]:
    allowed_ours, banned = RULES[package]
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module, line in _imports(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if top in OURS and top != package:
                if top not in allowed_ours:
                    out.append(where)
                elif top in ALLOWED_MODULES.get(package, {}) and module not in ALLOWED_MODULES[package][top]:
                    out.append(where)
            elif top in banned:
                out.append(where)
    return out


def _separate_violations(package: str) -> list[str]:
    """Imports of SEPARATE[package] (e.g. api.cli) by the package's modules outside it."""
    inner = SEPARATE[package]
    inner_dir = ROOT.joinpath(*inner.split("."))
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if inner_dir in path.parents:
            continue
        hits: dict[int, str] = {}  # line -> the first name it imports from inside (`m` before `m.x`)
        for module, line in _imports(path, with_names=True):
            if module == inner or module.startswith(inner + "."):
                hits.setdefault(line, module)
        out += [f"{path.relative_to(ROOT)}:{line} imports {module}" for line, module in sorted(hits.items())]
    return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _entry_point_violations(package: str) -> list[str]:
    """Imports of an entry point (ENTRY_POINTS) by a library module of any of our packages."""
    entries = set().union(*ENTRY_POINTS.values())
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if _module_name(path) in entries:
            continue
        for module, line in _imports(path, with_names=True):
            if module in entries:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(RULES))
def test_library_never_imports_an_entry_point(package):
    """Loaders and helpers live in the library; `python -m` scripts and benchmarks sit on top of it."""
    for name in ENTRY_POINTS[package]:
        assert ROOT.joinpath(*name.split(".")).with_suffix(".py").exists(), f"{name} is listed but missing"
    assert _entry_point_violations(package) == []


def _fake_tree(root: Path, files: dict[str, str], monkeypatch) -> None:
    """Write files (path -> text) under root and point the checker at it."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", root)  # this module's ROOT (it is tests.test_layering)


def test_checker_catches_the_library_importing_an_entry_point(tmp_path, monkeypatch):
    files = {
        "inference/__init__.py": "",
        "inference/generate.py": "from inference.checkpoint.loader import load_model\n",
        "inference/bench.py": "from inference.bench_forward import peak_rss_mib\n",
        "inference/bench_forward.py": "",
        "inference/engine/engine.py": "from inference.generate import load_model\nfrom inference import bench\n",
    }
    _fake_tree(tmp_path, files, monkeypatch)
    assert _entry_point_violations("inference") == [
        "inference/engine/engine.py:1 imports inference.generate",
        "inference/engine/engine.py:2 imports inference.bench",
    ]


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_respects_layering(package):
    assert (ROOT / package / "__init__.py").exists()
    assert _violations(package) == []


@pytest.mark.parametrize("package", sorted(SEPARATE))
def test_package_never_imports_its_separate_subpackage(package):
    """api/ outside api/cli/ is the HTTP service alone: it never imports the command line."""
    assert ROOT.joinpath(*SEPARATE[package].split("."), "__init__.py").exists()
    assert _separate_violations(package) == []


def test_checker_catches_a_forbidden_edge(tmp_path, monkeypatch):
    """The checker itself must see a violation, or the test above could never fail."""
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "bad.py").write_text("import torch\nfrom inference.model.model import Transformer\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert len(_violations("pipeline")) == 2


def test_checker_catches_the_http_service_importing_the_cli(tmp_path, monkeypatch):
    """Every way of importing api.cli from an HTTP module is seen (absolute, `from api import cli`, relative);
    the command line importing itself is not a violation."""
    files = {
        "api/__init__.py": "",
        "api/main.py": "import api.cli.main\nfrom api import cli, settings\n",
        "api/upload.py": "from .cli import remote\nfrom . import cli\nfrom .settings import ApiSettings\n",
        "api/routes/__init__.py": "",
        "api/routes/jobs.py": "from ..cli.stack import Stack\nfrom api.cli.flow import run\nfrom ..deps import db\n",
        "api/cli/__init__.py": "",
        "api/cli/main.py": "from api.cli import commands\nfrom . import flow\nfrom .remote import ApiClient\n",
    }
    _fake_tree(tmp_path, files, monkeypatch)
    assert _separate_violations("api") == [
        "api/main.py:1 imports api.cli.main", "api/main.py:2 imports api.cli",
        "api/routes/jobs.py:1 imports api.cli.stack", "api/routes/jobs.py:2 imports api.cli.flow",
        "api/upload.py:1 imports api.cli", "api/upload.py:2 imports api.cli",
    ]
    assert _violations("api") == []  # relative imports stay inside api: no package edge
