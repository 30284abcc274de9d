"""The layer order that docs/architecture.md writes down, enforced: a module imports only from
its own sub-package or from lower layers, and the package's import graph has no cycle."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "semcom_jax")
# Lowest first, as in docs/architecture.md; the package's own __init__ sits above them all.
LAYERS = ["atomic", "memo", "physics", "tables", "env", "baselines", "agents", "training",
          "codec", "builders", "cli", "__init__"]


def modules() -> dict:
    out = {}
    for base, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(base, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def imports(path: str, name: str, known: set) -> set:
    """Every semcom_jax module ``path`` imports, at module level or inside functions."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rsplit(".", 1)[0]
                base = anchor + ("." + base if base else "")
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        out |= {t for t in targets if t in known and t != name}
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_listed_layer():
    assert {layer(m) for m in modules()} <= set(LAYERS)


def test_no_module_imports_a_higher_layer():
    mods = modules()
    bad = []
    for name, path in mods.items():
        for target in imports(path, name, set(mods)):
            if LAYERS.index(layer(target)) > LAYERS.index(layer(name)):
                bad.append(f"{name} -> {target}")
    assert not bad, bad


def test_the_import_graph_has_no_cycle():
    mods = modules()
    # A package's __init__ re-exports its modules; an edge into it stands for those, so it is
    # left out as a target, as Python resolves such imports without a cycle.
    graph = {m: {t for t in imports(p, m, set(mods)) if not mods[t].endswith("__init__.py")}
             for m, p in mods.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
