"""The data modules import one another in one direction only (no cycle, even inside functions)."""

import ast
from pathlib import Path

import eala_jax.data

PACKAGE = Path(eala_jax.data.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Module -> the ``eala_jax.data`` modules it imports anywhere in its source."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        if path.name == "__init__.py":
            continue
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found |= {n.split(".")[2] for n in names if n.startswith("eala_jax.data.")}
        graph[path.stem] = found & {p.stem for p in PACKAGE.glob("*.py")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph.get(module, ())):
            if state.get(other) == 1:
                return path[path.index(other) :] + [other]
            if other not in state and (found := visit(other)):
                return found
        state[module] = 2
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycle_between_data_modules():
    graph = _imports()
    assert "registry" in graph and "tfds_builders" in graph
    assert "registry" in graph["tfds_builders"]  # the builder reads through the registry
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
