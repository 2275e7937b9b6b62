"""The package layout: stages import downward only, no import circles, few root modules.

Every ``import`` in the package is read from the source (function-level ones included, so a
lazy import cannot hide an upward dependency or a circle).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "irestore"

# bottom first: a module may import its own stage and the stages below it, never above
STAGES = [
    ("foundations", ("irestore", "irestore.labels", "irestore.devices", "irestore.observe", "irestore.registry")),
    ("io", ("irestore.io",)),
    ("weights", ("irestore.weights",)),
    ("degrade", ("irestore.degrade",)),
    ("models", ("irestore.models",)),
    ("data", ("irestore.data",)),
    ("evaluate", ("irestore.evaluate",)),
    ("conditioning", ("irestore.conditioning",)),
    ("diffusion", ("irestore.diffusion",)),
    ("restorers", ("irestore.restorers",)),
    ("plan", ("irestore.plan",)),
    ("pipeline", ("irestore.pipeline",)),
    ("training", ("irestore.training",)),
    ("model store", ("irestore.weights.store",)),
    ("batch", ("irestore.batch", "irestore.batch.quality", "irestore.batch.queue", "irestore.batch.report", "irestore.batch.report_html", "irestore.batch.resume")),
    ("benchmark", ("irestore.benchmark",)),
    ("cli", ("irestore.cli", "irestore.__main__")),
]
# entry points: only the CLI may import them
TOP = ("irestore.cli", "irestore.batch", "irestore.benchmark", "irestore.training", "irestore.weights.store")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The irestore modules a file imports (`from pkg import submodule` counts as the submodule)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
            names.update(submodules)
            if len(submodules) < len(node.names):  # names from the module itself, not only its submodules
                names.add(node.module)
    return {name for name in names if name in MODULES}


GRAPH = {module: _imports(path) - {module} for module, path in MODULES.items()}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def stage(module: str) -> int:
    """Index in STAGES of the longest prefix naming the module."""
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(STAGES) for prefix in prefixes
               if _within(module, prefix) and (prefix != "irestore" or module == "irestore")]
    assert matches, f"{module} is in no stage of tests/test_layout.py: place it"
    return max(matches)[1]


def test_every_module_has_a_stage_and_imports_only_downward():
    upward = [f"{module} ({STAGES[stage(module)][0]}) imports {target} ({STAGES[stage(target)][0]})"
              for module, targets in GRAPH.items() for target in targets if stage(target) > stage(module)]
    assert not upward, "\n".join(sorted(upward))


def test_only_the_cli_imports_the_entry_points():
    offenders = [f"{module} imports {target}" for module, targets in GRAPH.items() for target in targets
                 for top in TOP if _within(target, top) and not _within(module, top) and STAGES[stage(module)][0] != "cli"]
    assert not offenders, "\n".join(sorted(offenders))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_circles_even_through_function_level_imports():
    # a package's __init__ re-exporting its submodules is not a circle unless a submodule
    # imports the package back, which counts
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_at_most_eight_modules_at_the_package_root():
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= 8, root


def test_stage_lookup_prefers_the_longest_prefix():
    assert STAGES[stage("irestore.weights.store")][0] == "model store"
    assert STAGES[stage("irestore.weights.sources")][0] == "weights"
    by_module = defaultdict(set)
    for module in MODULES:
        by_module[STAGES[stage(module)][0]].add(module)
    assert "irestore.pipeline" in by_module["pipeline"]
