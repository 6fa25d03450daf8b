"""The house holds its shape: every module of ``catalog`` sits in a layer, a lower layer never imports a
higher one, and no modules import each other in a circle. Imports made inside functions count; those
made only for type checking (``if TYPE_CHECKING:``) do not run, and do not."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "catalog"

#: Lowest first. Reading files (scan, decode, formats) sits under the methods: a method signs a
#: decoded picture; the workers that run the methods over files sit above them.
LAYERS: list[tuple[str, ...]] = [
    (
        "catalog",
        "catalog.errors",
        "catalog.config",
        "catalog.interrupts",
        "catalog.lock",
        "catalog.background",
    ),
    ("catalog.text",),
    ("catalog.store",),
    ("catalog.ingest.formats", "catalog.ingest.imaging", "catalog.ingest.scan"),
    ("catalog.methods",),
    ("catalog.ingest",),
    ("catalog.search",),
    ("catalog.grouping",),
    ("catalog.sync",),
    ("catalog.evaluation",),
    ("catalog.actions",),
    ("catalog.review",),
    ("catalog.cli",),
    ("catalog.__main__", "catalog.migrations"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the most specific prefix that names one."""
    best, rank = -1, -1
    for k, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, rank = len(name), k
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The catalog modules ``path`` imports when it runs (at the top or inside functions)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    me = module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from catalog.x import y``: y may be a module of its own.
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != me and name.startswith("catalog"):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): runtime_imports(p, modules) for p in paths}


def test_a_lower_layer_never_imports_a_higher_one():
    upward = sorted(
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for module, targets in graph().items()
        for target in targets
        # A package's __init__ may name its own modules (the methods' registry).
        if layer_of(target) > layer_of(module) and not target.startswith(module + ".")
    )
    assert upward == []


def test_no_import_cycles():
    edges = graph()
    # A package importing its own modules to register them is no cycle of responsibilities.
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_module_over_600_lines():
    long = {
        module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600 and "migrations" not in p.parts
    }
    assert long == {}


def test_catalog_top_level_holds_only_the_base():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == [
        "__init__.py",
        "__main__.py",
        "background.py",
        "config.py",
        "errors.py",
        "interrupts.py",
        "lock.py",
        "text.py",
    ]


def test_only_the_search_layer_asks_a_method_its_kind():
    """Code outside ``catalog.search`` asks the method's search (``search_for(method)``) or the method
    itself, never ``method.kind``: one switch, in one place."""
    asked = []
    for path in PACKAGE.rglob("*.py"):
        if module_name(path).startswith("catalog.search"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(side, ast.Attribute) and side.attr == "kind" for side in sides):
                    asked.append(f"{module_name(path)}:{node.lineno}")
    assert asked == []
