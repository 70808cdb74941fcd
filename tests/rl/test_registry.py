"""One method registry: the schema, params.yaml, the docs and the generic code all follow it, and adding a
method touches at most four files (its module, pipeline/config/methods.py, params.yaml, docs/methods.md)."""
from __future__ import annotations

import ast
import dataclasses
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import yaml

from pipeline.config.schema import EntropyCfg, TrainCfg
from pipeline.rl import REGISTRY, method_configs, method_names
from tests.conftest import ROOT


def test_schema_params_and_docs_follow_the_registry():
    assert typing.get_args(typing.get_type_hints(TrainCfg)["method"]) == method_names()
    assert {f.name for f in dataclasses.fields(EntropyCfg)} == {"measure", *method_configs()}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(params["entropy"]) == {"measure", *method_configs()}
    docs = (ROOT / "docs/methods.md").read_text()
    missing = [name for name in REGISTRY if f"`{name}`" not in docs]
    assert not missing, f"docs/methods.md has no entry for {missing}"


def _names_used(path: Path) -> set[str]:
    """hasattr calls, isinstance checks against anything but builtin types, method names and classes."""
    import builtins

    classes = {cls.__name__ for cls in REGISTRY.values()} - {"Regularizer"}
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr":
            used.add(ast.unparse(node))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            types = [n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)]
            if any(not hasattr(builtins, t) for t in types):
                used.add(ast.unparse(node))
        elif isinstance(node, ast.Constant) and node.value in REGISTRY and node.value != "none":
            used.add(repr(node.value))
        elif isinstance(node, ast.Name) and node.id in classes or isinstance(node, ast.Attribute) and node.attr in classes:
            used.add(ast.unparse(node))
    return used


def test_generic_code_never_names_a_method():
    """pipeline/train, pipeline/measure and pipeline/stages ask methods through hooks: no hasattr or
    isinstance checks on objects, no method class and no method name."""
    offenders = {str(p.relative_to(ROOT)): sorted(_names_used(p)) for folder in ("train", "measure", "stages")
                 for p in sorted((ROOT / "pipeline" / folder).rglob("*.py")) if _names_used(p)}
    assert not offenders


TOY_CFG = '''

@dataclass(frozen=True)
class ToyCfg:
    gamma: float = fld(0.5, ge=0.0)


METHODS["toy"] = Method("pipeline.rl.methods.toy", ToyCfg)
'''

TOY = '''"""A toy method for the registry test: a fixed bonus on the squared entropy."""
from pipeline.config.methods import ToyCfg
from pipeline.rl.methods.base import Regularizer, RegOutput, global_aggregate, register


@register
class Toy(Regularizer):
    name = "toy"
    Config = ToyCfg

    def __init__(self, *, gamma):
        super().__init__()
        self.gamma = gamma

    def term(self, inp, ctx):
        return RegOutput(-self.gamma * global_aggregate(inp.entropy ** 2, inp.mask, inp.agg_mode, inp.denoms))
'''

CHECK = '''
import torch
from pipeline.config import load_params
from pipeline.rl import Denoms, RegInputs, build
p = load_params("params.yaml")
reg = build(p.train.method, p.entropy, {"h0": 1.0}, p.seed)
m = torch.ones(2, 3, dtype=torch.bool)
out = reg.term(RegInputs(entropy=torch.ones(2, 3), mask=m, denoms=Denoms(6.0, 2.0, 2.0, 3)), {})
print(type(reg).__name__, reg.gamma, float(out.term))
'''


def test_adding_a_method_touches_four_files(tmp_path):
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pipeline/rl/methods/toy.py").write_text(TOY)                                   # 1: the module
    registry = tmp_path / "pipeline/config/methods.py"                                           # 2: its entry
    registry.write_text(registry.read_text() + TOY_CFG)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())                                  # 3: params.yaml
    params["train"]["method"] = "toy"
    params["entropy"]["toy"] = {"gamma": 0.25}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    # 4: docs/methods.md (prose only; nothing reads it at run time)
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["Toy", "0.25", "-0.25"]
