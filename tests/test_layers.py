"""The package's import graph, read from the source (no import runs): no cycle, and every import
points down the layers, cube -> chips and records -> export -> data -> models -> model folder ->
serving -> training -> evaluation, maps and the study; entry points may import anything."""

import ast
import graphlib
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tf_landslide"

# Bottom first. A module belongs to the layer of the longest prefix it starts with (a prefix names
# a module or a package: "cube" holds the cube's modules, "cube.check" is an entry point).
LAYERS = [
    ("foundation", ["config", "storage", "records", "jit", "float16", "kernels", "metrics", "plots", "flagfiles"]),
    ("cube", ["cube"]),
    ("chips and shards", ["chips", "normalisation", "shards"]),
    ("export", ["export"]),
    ("input pipeline", ["data"]),
    ("models", ["models"]),
    ("model folder", ["model_folder"]),
    ("serving", ["serving"]),
    ("training", ["distribution", "optimizer", "callbacks", "operating_point", "train_lib"]),
    ("evaluation, maps, study", ["model_card", "evaluate", "maps", "study"]),
    ("entry points", ["flags", "cube.check", "cube.build.__main__", "vertex", "cli", "__main__"]),
]


def module_imports() -> dict[str, set[str]]:
    """Every module of the package (dotted, without 'tf_landslide.') and the package modules it
    imports anywhere in its source, at the top or inside a function."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path

    def resolve(dotted: str) -> str | None:
        name = dotted.removeprefix("tf_landslide").lstrip(".")
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
        imported = {resolve(t) for t in targets if t.startswith("tf_landslide.")}
        graph[name] = {m for m in imported if m and m != name}
    return graph


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"tf_landslide.{module} is in no layer: add it to LAYERS in {Path(__file__).name}"
    return max(matches)[1]


def test_every_module_has_a_layer():
    for module in module_imports():
        if module:  # the package's own __init__ imports nothing of it
            layer_of(module)


def test_the_package_has_no_import_cycle():
    graph = module_imports()
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_imports_point_down_the_layers():
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in module_imports().items()
        if module
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_checks_see_a_cycle_and_an_upward_import(monkeypatch):
    """The reading above finds imports inside functions, and the checks fail on what they guard."""
    graph = module_imports()
    assert "model_folder" in graph["serving"]  # imported at the top
    assert "models.unetplusplus" in graph["models"]  # imported inside a function
    cyclic = {**graph, "storage": graph["storage"] | {"serving"}}
    monkeypatch.setattr(sys.modules[__name__], "module_imports", lambda: cyclic)
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_the_package_has_no_import_cycle()
    with pytest.raises(AssertionError, match="storage .foundation. imports serving .serving."):
        test_imports_point_down_the_layers()
