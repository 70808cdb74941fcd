"""dvc.yaml cannot go stale: each stage's deps cover the library files it imports, its params are the keys
it reads.

Deps: from `python -m pipeline.stages.<name>`, follow every `pipeline.*` import (module level and inside
functions, plus the packages' `__init__.py` that importing runs) and require each file to be a dep or under
a directory dep.  pipeline/tracking.py and pipeline/tracking_support.py are exempt: they only log to
MLflow, so a logging change must not retrain (their own imports are still followed).

Params: a static reading of the stage code.  Starting from every function of the stage module, follow calls
into `pipeline` functions and collect attribute chains rooted at `params` (or at `<x>.params`, as the
trainer's `ctx.params`), through local aliases (`d = params.difficulty`, tuple assignments, loop targets).
A chain that ends on a section (passed on whole, iterated) reads the whole section.  Limits, on purpose:
the bare `params` object handed on whole is not a read (`stage_run` logs it, `fingerprint` hashes it,
`TrainContext` carries it into pipeline.train.loop, whose `ctx.params` chains are followed); `tracking.*`
and `profile` say where and under which label runs are logged, not what is computed.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

NOT_AN_INPUT_FILES = {"pipeline/tracking.py", "pipeline/tracking_support.py"}
NOT_AN_INPUT_KEYS = ("tracking", "profile")
# Functions that only name, tag and log runs (run names from train.method and seed, the chart cadence, the
# datasets logged as run inputs): their params reads are labels, not inputs of what a stage computes.
NOT_AN_INPUT_FUNCTIONS = {("pipeline.stages.common", "stage_run"), ("pipeline.stages.common", "stage_inputs")}
# Sections a stage may declare whole without reading every key: the trainer builds whichever method
# train.method names, so each method's section is an input of the train stage; the entropy stage asks
# every method for the anchors it measures on the base policy.
WHOLE_BY_DESIGN = {("train", "entropy"), ("entropy", "entropy")}


# ---------------------------------------------------------------- imports


def module_file(name: str, root: Path = ROOT) -> Path | None:
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def imported_modules(path: Path, modname: str) -> set[str]:
    """Every `pipeline.*` name imported anywhere in the file (`from a import b` yields a and a.b)."""
    package = modname if path.name == "__init__.py" else modname.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m.split(".")[0] == "pipeline"}


def import_closure(module: str, root: Path = ROOT) -> dict[str, Path]:
    """module name -> file for everything `python -m <module>` can import under pipeline/."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            name = ".".join(parts[:i])
            path = module_file(name, root)
            if path is not None and name not in seen:
                seen[name] = path
                todo.extend(imported_modules(path, name))
    return seen


def covered(rel: str, deps: list[str]) -> bool:
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def imported_files(stage: dict, root: Path = ROOT) -> set[str]:
    return {p.relative_to(root).as_posix() for m in stage_modules(stage) for p in import_closure(m, root).values()}


def missing_deps(stage: dict, root: Path = ROOT) -> list[str]:
    return sorted(f for f in imported_files(stage, root) - NOT_AN_INPUT_FILES if not covered(f, stage["deps"]))


def stage_modules(stage: dict) -> list[str]:
    """Every `pipeline.stages.<name>` the command runs (a launcher wrapper and the stage it starts)."""
    modules = re.findall(r"\bpipeline\.stages\.\w+", stage["cmd"])
    assert modules, f"stage command {stage['cmd']!r} runs no pipeline.stages module"
    return modules


def load_stages(path: Path = ROOT / "dvc.yaml") -> dict:
    return yaml.safe_load(path.read_text())["stages"]


STAGES = load_stages()


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_cover_every_imported_library_file(name):
    missing = missing_deps(STAGES[name])
    assert not missing, f"dvc.yaml stage {name!r} imports {missing} but lists no dep covering them"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_lists_no_library_dep_it_does_not_import(name):
    stage = STAGES[name]
    files = imported_files(stage)
    stale = [d for d in stage["deps"] if d.startswith("pipeline") and not any(covered(f, [d]) for f in files)]
    assert not stale, f"dvc.yaml stage {name!r} depends on {stale}, which it never imports (needless re-runs)"


def test_regression_deps_missed_utils_so_a_seeding_change_did_not_retrain(tmp_path):
    """Issue 14 item 9: `pipeline/utils` was no dep of train, so editing utils/seeding.py (rollout seeds)
    left training up to date.  The check must name the file when such a dep is dropped again."""
    assert covered("pipeline/utils/seeding.py", STAGES["train"]["deps"])
    assert "pipeline/utils/seeding.py" in {p.relative_to(ROOT).as_posix()
                                           for p in import_closure("pipeline.stages.train").values()}
    stage = {**STAGES["train"], "deps": [d for d in STAGES["train"]["deps"] if d != "pipeline/utils"]}
    assert "pipeline/utils/seeding.py" in missing_deps(stage)


def test_a_launcher_command_counts_the_stage_it_starts():
    stage = {"cmd": "python -m pipeline.stages.launch --nproc 2 -m pipeline.stages.train", "deps": []}
    assert stage_modules(stage) == ["pipeline.stages.launch", "pipeline.stages.train"]
    assert "pipeline/train/loop.py" in missing_deps(stage)  # found through the started stage's imports


def test_import_closure_follows_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "pipeline"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from pipeline.c import g\n")
    (pkg / "c.py").write_text("")
    (pkg / "a.py").write_text("import os\nfrom pipeline.sub import x\n")
    assert set(import_closure("pipeline.a", tmp_path)) == {"pipeline", "pipeline.a", "pipeline.sub", "pipeline.sub.b",
                                                           "pipeline.c"}


# ---------------------------------------------------------------- params


def _chain(node: ast.AST) -> list[str] | None:
    """`a.b[0].c` -> ['a', 'b', 'c'] (subscripts dropped); None unless rooted at a name."""
    parts = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def _resolve(chain: list[str], aliases: dict[str, list[str]], roots: set[str]) -> list[str] | None:
    head, *rest = chain
    if head in roots:
        return rest
    if head in aliases:
        return aliases[head] + rest
    return rest[rest.index("params") + 1:] if "params" in rest else None


def _pairs(node: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            return list(zip(target.elts, value.elts))
        return [(target, value)]
    if isinstance(node, (ast.For, ast.comprehension)):
        return [(node.target, node.iter)]
    return []


def function_reads(fn: ast.AST, roots: set[str]) -> set[str]:
    """Dotted params keys read in one function (aliases resolved; alias definitions are not reads)."""
    aliases: dict[str, list[str]] = {}
    alias_values = set()
    for _ in range(3):  # aliases of aliases
        for node in ast.walk(fn):
            for target, value in _pairs(node):
                chain = _chain(value)
                path = _resolve(chain, aliases, roots) if chain else None
                if isinstance(target, ast.Name) and path:
                    aliases[target.id] = path
                    if isinstance(node, ast.Assign):
                        alias_values.add(value)
    parents = {child: node for node in ast.walk(fn) for child in ast.iter_child_nodes(node)}
    reads = set()
    for node in ast.walk(fn):
        if not isinstance(node, (ast.Attribute, ast.Name)) or not isinstance(node.ctx, ast.Load):
            continue
        parent = parents.get(node)
        if isinstance(parent, (ast.Attribute, ast.Subscript)) and parent.value is node or node in alias_values:
            continue
        chain = _chain(node)
        path = _resolve(chain, aliases, roots) if chain else None
        if path and isinstance(parent, ast.Call) and parent.func is node:
            path = path[:-1]  # `x.items()` calls a method: it reads x whole
        if path:
            reads.add(".".join(path))
    return reads


class _Module:
    def __init__(self, name: str, root: Path) -> None:
        self.name, tree = name, ast.parse(module_file(name, root).read_text())
        self.functions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.imports: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
                self.imports |= {a.asname or a.name: (node.module, a.name) for a in node.names}
            elif isinstance(node, ast.Import):
                self.imports |= {a.asname or a.name: (a.name, None) for a in node.names
                                 if a.name.startswith("pipeline")}

    def callees(self, fn: ast.AST, roots: set[str]) -> list[tuple[str, str, set[str]]]:
        """(module, function, names bound to the params root in the callee) for calls into pipeline."""
        out = []
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            f = call.func
            if isinstance(f, ast.Name) and f.id in self.functions:
                target = (self.name, f.id)
            elif isinstance(f, ast.Name) and f.id in self.imports:
                target = self.imports[f.id]
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in self.imports:
                mod, attr = self.imports[f.value.id]
                target = (f"{mod}.{attr}" if attr else mod, f.attr)
            else:
                continue
            passed = [i for i, a in enumerate(call.args) if isinstance(a, ast.Name) and a.id in roots]
            out.append((target[0], target[1], set(passed)))
        return out


def stage_reads(module: str, root: Path = ROOT) -> set[str]:
    """Every params key the stage's code (and the pipeline functions it calls) reads."""
    modules: dict[str, _Module | None] = {}

    def get(name):
        if name not in modules:
            modules[name] = _Module(name, root) if module_file(name, root) else None
        return modules[name]

    def resolve(mod_name: str, fn_name: str) -> tuple[_Module | None, str]:
        """Where `fn_name` is defined, following re-exports (`from pipeline.x import f` in a module)."""
        mod = get(mod_name)
        while mod is not None and fn_name not in mod.functions and fn_name in mod.imports:
            source, name = mod.imports[fn_name]
            mod, fn_name = get(source), name or fn_name
        return mod, fn_name

    # work items: (module, function, names bound to the params root there)
    todo = [(module, fn, frozenset({"params"})) for fn in get(module).functions]
    seen, reads = set(), set()
    while todo:
        key = todo.pop()
        mod = get(key[0])
        if key in seen or mod is None or key[1] not in mod.functions or key[:2] in NOT_AN_INPUT_FUNCTIONS:
            continue
        seen.add(key)
        fn = mod.functions[key[1]]
        reads |= function_reads(fn, set(key[2]))
        for callee_mod, callee, positions in mod.callees(fn, set(key[2])):
            target, callee = resolve(callee_mod, callee)
            if target is None or callee not in target.functions:
                continue
            args = target.functions[callee].args.args
            roots = {"params"} | {args[i].arg for i in positions if i < len(args)}
            todo.append((target.name, callee, frozenset(roots)))
    return {r for r in reads if r.split(".")[0] not in NOT_AN_INPUT_KEYS}


def declared_reads(*modules: str) -> tuple[str, ...]:
    """The READS of the given modules (a launcher declares none; the stage it starts does)."""
    import importlib

    found = [importlib.import_module(m) for m in modules]
    assert any(hasattr(m, "READS") for m in found), f"none of {modules} declares READS"
    return tuple(dict.fromkeys(k for m in found for k in getattr(m, "READS", ())))


def _prefix(a: str, b: str) -> bool:
    """a equals b or is a section above it."""
    return a == b or b.startswith(a + ".")


@pytest.mark.parametrize("name", list(STAGES))
def test_dvc_params_are_the_keys_the_stage_declares(name):
    listed = STAGES[name].get("params", [])
    assert all(isinstance(k, str) for k in listed), f"stage {name}: params must be keys of params.yaml"
    assert sorted(listed) == sorted(declared_reads(*stage_modules(STAGES[name]))), \
        f"dvc.yaml params of {name!r} differ from READS of {stage_modules(STAGES[name])}"


ENTRY_POINTS = sorted(f"pipeline.stages.{p.stem}" for p in (ROOT / "pipeline/stages").glob("*.py")
                      if "\n    main_guard(run" in p.read_text())


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_declared_keys_cover_what_the_code_reads(module):
    """Every stage entry point (the root dvc.yaml's and the comparison's) declares what it reads."""
    declared = declared_reads(module)
    undeclared = sorted(r for r in stage_reads(module) if not any(_prefix(d, r) for d in declared))
    assert not undeclared, f"{module} reads {undeclared} but its READS (and so dvc.yaml) do not list them"


@pytest.mark.parametrize("name", list(STAGES))
def test_declared_sections_are_read_in_full(name):
    """A whole section is declared only where the stage reads every key of it (else list the keys)."""
    from pipeline.config import Params, flatten, to_dict

    leaves = list(flatten(to_dict(Params())))
    reads = set().union(*(stage_reads(m) for m in stage_modules(STAGES[name])))
    for key in declared_reads(*stage_modules(STAGES[name])):
        under = [leaf for leaf in leaves if _prefix(key, leaf)]
        assert under, f"stage {name!r} declares {key!r}, which is no key of the schema"
        if (name, key) in WHOLE_BY_DESIGN:
            continue
        unread = [leaf for leaf in under if not any(_prefix(r, leaf) or _prefix(leaf, r) for r in reads)]
        assert not unread, f"stage {name!r} declares {key!r} but never reads {unread}: list the keys it reads"


def test_params_reading_follows_aliases_calls_and_loops(tmp_path):
    pkg = tmp_path / "pipeline"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("def engine(cfg, x):\n    return cfg.rollout.batch_size\n")
    (pkg / "common.py").write_text("from pipeline.helper import engine  # re-exported\n")
    (pkg / "stage.py").write_text(
        "from pipeline.common import engine\n"
        "def run(params):\n"
        "    d = params.difficulty\n"
        "    a, b = params.eval, params.train.steps\n"
        "    for bench in a.benchmarks:\n"
        "        print(bench.name)\n"
        "    engine(params, 1)\n"
        "    use(d.n_samples, b, params.data, ctx.params.seed, params.tracking.uri)\n"
        "    params.items(), params.model.tiny.keys()\n")
    assert stage_reads("pipeline.stage", tmp_path) == {"difficulty.n_samples", "train.steps", "eval.benchmarks",
                                                       "eval.benchmarks.name", "rollout.batch_size", "data", "seed",
                                                       "model.tiny"}
