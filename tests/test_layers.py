"""The three-layer boundary and the size rules, enforced on the source tree.

pipeline/ is a plain library: only pipeline/stages/ and pipeline/tracking.py may import prefect, mlflow
or dvc; flows/ holds Prefect only and never imports torch; modules stay under 500 lines and functions
under 60.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

ORCHESTRATION = {"prefect", "mlflow", "dvc"}


def _py_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_library_does_not_import_orchestration():
    offenders = []
    for path in _py_files("pipeline"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("pipeline/stages/") or rel == "pipeline/tracking.py":
            continue
        bad = _imports(path) & ORCHESTRATION
        if bad:
            offenders.append((rel, sorted(bad)))
    assert not offenders


def test_flows_never_import_torch():
    offenders = [(p.name, sorted(_imports(p) & {"torch", "pipeline"})) for p in _py_files("flows")
                 if _imports(p) & {"torch", "pipeline"}]
    assert not offenders, "flows/ must call stages through DVC or the CLI, never import torch or the library"


@pytest.mark.parametrize("path", _py_files("pipeline", "flows", "bench", "tools"), ids=lambda p: p.name)
def test_module_and_function_sizes(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 500, f"{path} has more than 500 lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long, f"{path}: functions over 60 lines: {long}"
    assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
