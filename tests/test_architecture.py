"""The import rule of docs/architecture.md, checked statically on the source.

Every module of ``evojax_zero`` and ``nas`` is parsed with ``ast`` (nothing is imported), each
import of a project module is resolved to the module it loads, and:

* a module imports only from its own layer or lower ones (``LAYERS`` below);
* ``nas`` uses nothing of ``evojax_zero`` but the evolution engine;
* no project module is imported inside a function, except the documented optional
  dependencies in ``LOCAL_IMPORT_ALLOW``;
* every module belongs to a layer (a new package must be placed in the table);
* ``import nas`` does not load the AutoML-Zero evaluator (checked statically over the closure
  of module-level imports, and at run time in a fresh interpreter).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("evojax_zero", "nas")

# Layers, lowest first: a module may import modules of its own layer and of earlier layers
# of the same stack. ``nas`` additionally uses the engine of ``evojax_zero`` (EXTRA_ALLOWED).
# Entries are module-name prefixes; the longest matching prefix decides.
EVOJAX_ZERO_LAYERS = [
    ("engine", ["evojax_zero.engine"]),
    ("program", ["evojax_zero.program"]),
    ("native", ["evojax_zero.native"]),
    ("evaluate", ["evojax_zero.evaluate"]),
    ("search", ["evojax_zero.search"]),
    ("experiment", ["evojax_zero.experiment"]),
    ("main", ["evojax_zero.__main__"]),
]
NAS_LAYERS = [
    ("nas.space", ["nas.checks", "nas.primitives", "nas.space", "nas.arch_params"]),
    ("nas.algorithms", ["nas.algorithms", "nas.early_stopping", "nas.tuner", "nas.flows"]),
    ("nas.weight_sharing", ["nas.weight_sharing"]),
    ("nas.benchmarks", ["nas.benchmarks", "nas.nas_bench_graph", "nas.digits"]),
    ("nas.api", ["nas"]),  # the package's __init__: re-exports for users
]
EXTRA_ALLOWED = {name: {"engine"} for name, _ in NAS_LAYERS}
# ``evojax_zero/__init__.py`` is a lazy facade (names resolve on first use, nothing is
# imported at module level), so ``import evojax_zero`` is allowed everywhere; a name taken from
# it (``from evojax_zero import Evaluator``) is resolved to the module that defines it.
FACADE = "evojax_zero"

# (importing module, imported module) -> why a function-local import is needed. Only for a
# documented optional dependency.
LOCAL_IMPORT_ALLOW: dict[tuple[str, str], str] = {}

# Modules ``import nas`` must never load.
NOT_FROM_NAS = ("evojax_zero.program", "evojax_zero.native", "evojax_zero.evaluate",
                "evojax_zero.search", "evojax_zero.experiment")


def _layer_table():
    table, order = {}, {}
    for stack in (EVOJAX_ZERO_LAYERS, NAS_LAYERS):
        for rank, (name, prefixes) in enumerate(stack):
            order[name] = (id(stack), rank)
            for p in prefixes:
                table[p] = name
    return table, order


LAYER_OF_PREFIX, LAYER_ORDER = _layer_table()


def layer(module: str) -> str | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = LAYER_OF_PREFIX.get(".".join(parts[:n]))
        if name is not None:
            return name
    return None


def may_import(src_layer: str, dst_layer: str) -> bool:
    (s_stack, s_rank), (d_stack, d_rank) = LAYER_ORDER[src_layer], LAYER_ORDER[dst_layer]
    if s_stack == d_stack:
        return d_rank <= s_rank
    return dst_layer in EXTRA_ALLOWED.get(src_layer, set())


def _module_files() -> dict[str, pathlib.Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _module_files()


def _facade_names() -> dict[str, str]:
    """``_LAZY`` of evojax_zero/__init__.py (public name -> defining module), read from the
    source without importing the package."""
    tree = ast.parse(MODULES[FACADE].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


FACADE_NAMES = _facade_names()


class Import:
    def __init__(self, src: str, dst: str, line: int, local: bool, type_only: bool):
        self.src, self.dst, self.line, self.local, self.type_only = (
            src, dst, line, local, type_only)

    def __repr__(self):
        return f"{MODULES[self.src].relative_to(ROOT)}:{self.line}: {self.src} -> {self.dst}"


def _resolve(src: str, node: ast.AST) -> list[str]:
    """Project modules loaded by an import statement in module ``src``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
    is_pkg = MODULES[src].name == "__init__.py"
    if node.level:
        base = src.split(".") if is_pkg else src.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    if mod.split(".")[0] not in PACKAGES:
        return []
    out = []
    for alias in node.names:
        sub = f"{mod}.{alias.name}"
        if sub in MODULES:
            out.append(sub)  # from pkg import submodule
        elif mod == FACADE and alias.name in FACADE_NAMES:
            out.append(FACADE_NAMES[alias.name])  # a lazily resolved public name
        else:
            out.append(mod)
    return out


def _imports(src: str) -> list[Import]:
    tree = ast.parse(MODULES[src].read_text(), filename=str(MODULES[src]))
    found = []

    def visit(node, local: bool, type_only: bool):
        for child in ast.iter_child_nodes(node):
            child_local = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef
                                              | ast.Lambda)
            child_type_only = type_only or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import | ast.ImportFrom):
                for dst in _resolve(src, child):
                    found.append(Import(src, dst, child.lineno, local, type_only))
            visit(child, child_local, child_type_only)

    visit(tree, False, False)
    return found


ALL_IMPORTS = [imp for src in MODULES for imp in _imports(src)]


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if m != FACADE and layer(m) is None]
    assert not missing, (f"modules without a layer: {missing}; add them to "
                         "tests/test_architecture.py and docs/architecture.md")


def test_imports_only_go_down():
    bad = []
    for imp in ALL_IMPORTS:
        if imp.dst == FACADE or imp.src == FACADE:
            continue
        src, dst = layer(imp.src), layer(imp.dst)
        if dst is None or not may_import(src, dst):
            bad.append(f"{imp!r} ({src} may not import {dst})")
    assert not bad, "imports that go up or across the layers:\n" + "\n".join(bad)


def test_no_function_local_imports_of_project_modules():
    bad = [f"{imp!r}" for imp in ALL_IMPORTS
           if imp.local and (imp.src, imp.dst) not in LOCAL_IMPORT_ALLOW]
    assert not bad, ("function-local imports of project modules (import at the top, or add "
                     "a documented optional dependency to LOCAL_IMPORT_ALLOW):\n"
                     + "\n".join(bad))


def _closure(start: str) -> set[str]:
    """Modules loaded at import time of ``start`` (module-level imports, transitively;
    importing ``a.b.c`` also runs ``a`` and ``a.b``)."""
    edges: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if not imp.local and not imp.type_only:
            edges.setdefault(imp.src, set()).add(imp.dst)
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        parts = m.split(".")
        for n in range(1, len(parts) + 1):
            p = ".".join(parts[:n])
            if p in MODULES and p not in seen:
                seen.add(p)
                todo.extend(edges.get(p, ()))
    return seen


def test_import_nas_does_not_load_the_evaluator_statically():
    loaded = _closure("nas")
    bad = sorted(m for m in loaded if m.startswith(NOT_FROM_NAS))
    assert not bad, f"import nas loads {bad}"
    assert "evojax_zero.engine.regularized" in loaded  # the shared engine: it is found


def test_import_nas_does_not_load_the_evaluator_at_run_time():
    code = ("import sys, nas; print('\\n'.join(m for m in sys.modules "
            "if m.startswith('evojax_zero')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = r.stdout.split()
    assert "evojax_zero.engine.regularized" in loaded
    assert not [m for m in loaded if m.startswith(NOT_FROM_NAS)], loaded


@pytest.mark.parametrize("src,dst,ok", [
    ("evojax_zero.search.loop", "evojax_zero.evaluate.evaluator", True),
    ("evojax_zero.native.build", "evojax_zero.evaluate.interpreter", False),
    ("evojax_zero.engine.regularized", "evojax_zero.program.programs", False),
    ("nas.algorithms.evolution", "evojax_zero.engine.regularized", True),
    ("nas.space", "evojax_zero.evaluate.evaluator", False),
    ("nas.space", "nas.tuner", False),
    ("nas.benchmarks.nb201", "nas.weight_sharing.supernet", True),
])
def test_the_rule_itself(src, dst, ok):
    """The checker accepts a downward import and rejects an upward or cross one."""
    assert may_import(layer(src), layer(dst)) == ok
