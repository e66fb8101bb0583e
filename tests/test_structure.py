"""The package's structure drawn from its imports: no cycles, counting the imports made inside
functions too, so every module sits in a layer above everything it uses."""

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "oneranker"


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]                      # a subpackage counts as one module (loaders)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in its code)."""
    names = {_module(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {n: set() for n in names}
    for path in PACKAGE.rglob("*.py"):
        me = _module(path)
        if me == "__init__":
            continue
        inside_subpackage = path.parent != PACKAGE
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            if node.level == 1 and inside_subpackage:
                continue                     # a sibling in the same subpackage
            targets = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            graph[me] |= {t for t in targets if t in names and t != me}
    return graph


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    order = list(graphlib.TopologicalSorter(graph).static_order())     # raises CycleError on a cycle
    assert set(order) == set(graph)


def test_the_model_does_not_import_the_data_stack_or_the_experiments():
    graph = import_graph()

    def reach(name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    assert not reach("model") & {"data", "loaders", "world", "study", "tables", "pool", "evaluate"}
    assert not reach("losses") & {"data", "study", "train"}
    assert not reach("tables") & {"study", "train", "model"}         # tables are pure functions of results
