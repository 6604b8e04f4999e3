"""The layout keeps the data path readable: runtime modules never reach into offline work or interfaces,
there are no import cycles, and no module uses another module's private names."""

import ast
import subprocess
import sys
from pathlib import Path

import chatrec

PACKAGE = Path(chatrec.__file__).parent
OFFLINE = ("chatrec.training", "chatrec.evaluation", "chatrec.ui")  # runtime code must not import these


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def imports(path: Path, top_level_only: bool) -> set[str]:
    """chatrec modules a file imports (relative imports resolved); optionally only at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("chatrec")}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            mod = ".".join(x for x in (base, node.module or "") if x)
            if mod.startswith("chatrec"):
                # "from . import x" and "from .pkg import mod" name modules too
                out |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names}
    return out - {module_name(path)}


def is_runtime(name: str) -> bool:
    return not name.startswith(OFFLINE)


def test_runtime_modules_never_import_training_evaluation_or_ui():
    offenders = {name: sorted(i for i in imports(path, top_level_only=False) if not is_runtime(i))
                 for name, path in MODULES.items() if is_runtime(name)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_module_level_imports_have_no_cycle():
    graph = {name: {i for i in imports(path, top_level_only=True) if i in MODULES} for name, path in MODULES.items()}
    # Packages import their own modules' names only through explicit re-exports; drop the edge a module
    # has to its parent package (importing chatrec.media.audio runs chatrec.media first, not a cycle).
    graph = {n: {i for i in deps if not n.startswith(i + ".")} for n, deps in graph.items()}
    done, stack, cycles = set(), [], []

    def visit(n: str) -> None:
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in done:
            return
        stack.append(n)
        for m in sorted(graph[n]):
            visit(m)
        stack.pop()
        done.add(n)

    for n in sorted(graph):
        visit(n)
    assert cycles == []


def test_every_module_imports_alone_and_runtime_ones_stay_runtime():
    """Each module imported first, in a fresh set of chatrec modules: an import-order cycle would fail here."""
    code = f"""
import importlib, sys
leaks, failures = {{}}, {{}}
for name in {sorted(MODULES)!r}:
    for m in [m for m in sys.modules if m == "chatrec" or m.startswith("chatrec.")]:
        del sys.modules[m]
    try:
        importlib.import_module(name)
    except Exception as e:
        failures[name] = repr(e)
        continue
    if not name.startswith({OFFLINE!r}):
        leaked = sorted(m for m in sys.modules if m.startswith({OFFLINE!r}))
        if leaked:
            leaks[name] = leaked
print(repr((failures, leaks)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    failures, leaks = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert failures == {} and leaks == {}


def test_no_module_uses_another_modules_private_names():
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found += [f"{name}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_public_api():
    import chatrec as api

    assert sorted(api.__all__) == sorted(api._EXPORTS)
    for name in api.__all__:
        assert getattr(api, name).__name__ == name
