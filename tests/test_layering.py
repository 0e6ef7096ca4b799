"""The one layering rule of architecture.md, checked by parsing every import of our packages."""

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


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names imported by one file (outside `if TYPE_CHECKING:` blocks)."""
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
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
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


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_respects_layering(package):
    assert (ROOT / package / "__init__.py").exists()
    assert _violations(package) == []


def test_checker_catches_a_forbidden_edge(tmp_path, monkeypatch):
    """The checker itself must see a violation, or the test above could never fail."""
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "bad.py").write_text("import torch\nfrom inference.model import Transformer\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert len(_violations("pipeline")) == 2
