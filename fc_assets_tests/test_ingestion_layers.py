"""The ingestion package has the shape of its flow, without back-edges.

`read/` (pure: no Dagster, no lake) ← `deliver/` ← the Dagster layer (`assets`, `sensors`, `definitions`,
`state_jobs`); the feed declarations (`feeds.py`, `spec.py`) import nothing from `read/` or `deliver/`.
Imports are read from the source (ast): module level and inside functions alike, except under
`if TYPE_CHECKING:` (annotations only, never executed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import fc_assets.ingestion

ROOT = Path(fc_assets.ingestion.__file__).parent
PKG = "fc_assets.ingestion"
READ = f"{PKG}.read"
DELIVER = f"{PKG}.deliver"
DAGSTER_LAYER = {f"{PKG}.{m}" for m in ("assets", "sensors", "definitions", "state_jobs")}
DECLARATIONS = {f"{PKG}.feeds", f"{PKG}.spec"}
LAKE = "fc_assets.resources.storage"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> set[str]:
    """Every module `name` imports (a `from package import module` names the module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


IMPORTS = {name: imports_of(name) for name in MODULES}


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _offending(names: list[str], bad) -> dict[str, list[str]]:
    out = {n: sorted(m for m in IMPORTS[n] if bad(m)) for n in names}
    return {n: ms for n, ms in out.items() if ms}


def test_the_layers_are_where_the_flow_says():
    assert {n for n in MODULES if _under(n, READ)} > {f"{READ}.readers", f"{READ}.validate"}
    assert {n for n in MODULES if _under(n, DELIVER)} > {f"{DELIVER}.delta", f"{DELIVER}.senders"}
    assert set(MODULES) >= DAGSTER_LAYER | DECLARATIONS


def test_read_is_pure():
    """No deliver/, no Dagster layer, no Dagster, no lake."""
    read = [n for n in MODULES if _under(n, READ)]
    assert (
        _offending(
            read,
            lambda m: (
                _under(m, DELIVER)
                or m in DAGSTER_LAYER
                or m.split(".")[0] == "dagster"
                or m.startswith("dagster_")
                or _under(m, LAKE)
            ),
        )
        == {}
    )


def test_deliver_is_below_the_dagster_layer():
    deliver = [n for n in MODULES if _under(n, DELIVER)]
    assert _offending(deliver, lambda m: m in DAGSTER_LAYER) == {}


def test_feed_declarations_import_no_machinery():
    assert _offending(sorted(DECLARATIONS), lambda m: _under(m, READ) or _under(m, DELIVER)) == {}
    assert _offending([f"{PKG}.spec"], lambda m: m == f"{PKG}.feeds") == {}


def _edges() -> dict[str, set[str]]:
    """Module → the ingestion modules it imports (packages' empty __init__ left out)."""
    packages = {PKG, READ, DELIVER}
    return {
        n: {m for m in IMPORTS[n] if m in MODULES and m not in packages and m != n}
        for n in MODULES
        if n not in packages
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (cycle := dfs(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (cycle := dfs(n)):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(_edges()) is None


def test_the_checks_see_what_they_check():
    """The parser finds function-level imports, skips TYPE_CHECKING ones, and the cycle finder finds one."""
    assert f"{PKG}.deliver.pipeline" in IMPORTS[f"{PKG}.deliver.state_ops"]  # inside a function
    assert f"{PKG}.feeds" not in IMPORTS[f"{READ}.nested"]  # only under TYPE_CHECKING
    assert f"{PKG}.deliver.state_ops" in IMPORTS[f"{PKG}.state_jobs"]  # `from package import module`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
