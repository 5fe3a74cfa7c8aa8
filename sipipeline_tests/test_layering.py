"""The dependency direction of the layers, read from the syntax trees of the package.

Pure layers (method, similarity, model, reporting) never import Dagster; the method never
imports model access; the fast similarity path never imports its rouge-score oracle; nothing
outside `defs/` and the entry points imports `defs/`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sipipeline"
PURE_LAYERS = ("method", "similarity", "model", "reporting")
ENTRY_POINTS = ("definitions.py", "cli.py", "export_cli.py", "review_cli.py", "trace_cli.py",
                "status_cli.py", "plan_cli.py", "batches_cli.py")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def files_of(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def offending(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.name} imports {module}"
            for path in files for module in sorted(imported_modules(path))
            if any(module == name or module.startswith(name + ".") for name in forbidden)]


def test_every_layer_exists():
    for layer in (*PURE_LAYERS, "defs"):
        assert (PACKAGE / layer / "__init__.py").is_file(), layer


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_layers_never_import_dagster(layer):
    assert offending(files_of(layer), ("dagster", "dagster_graphql", "sipipeline.defs")) == []


def test_the_method_never_imports_model_access():
    assert offending(files_of("method"), ("sipipeline.model", "openai", "aiohttp")) == []


def test_the_fast_similarity_path_never_imports_its_oracle():
    fast = [p for p in files_of("similarity") if p.name not in ("__init__.py", "oracle.py")]
    assert fast and offending(fast, ("sipipeline.similarity.oracle", "rouge_score")) == []


def test_only_defs_and_the_entry_points_import_defs():
    others = [p for p in PACKAGE.rglob("*.py")
              if "defs" not in p.relative_to(PACKAGE).parts[:1] and p.name not in ENTRY_POINTS]
    assert offending(others, ("sipipeline.defs",)) == []


def test_the_checker_sees_imports(tmp_path):
    """The walker itself: a nested `from dagster import ...` is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from dagster import asset\n    import os.path\n")
    assert {"dagster", "dagster.asset", "os.path"} <= imported_modules(sample)
    assert offending([sample], ("dagster",))


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}
