"""The package's shape: no import cycle, each layer importing only downwards, networks in nn/,
and the family table as the one place a family is named."""

from __future__ import annotations

import ast

from genmodels.families import FAMILIES
from import_graph import SRC, cycles, import_graph, package_modules


def test_no_import_cycle_counting_imports_inside_functions():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_training_draws_no_figures():
    graph = import_graph()
    training = {name for name in graph if name.startswith("genmodels.training")}
    assert training
    assert all("genmodels.figures" not in graph[name] for name in training)


def test_the_table_and_the_schema_import_no_torch_nor_any_model():
    graph = import_graph()
    for light in ("genmodels.families", "genmodels.config", "genmodels.errors"):
        imported = graph[light]
        assert not any(m.startswith(("genmodels.models", "genmodels.nn")) for m in imported)
        source = package_modules()[light].read_text()
        assert "import torch" not in source


def test_every_network_lives_in_nn():
    outside = []
    for name, path in package_modules().items():
        if name.startswith("genmodels.nn"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base) for base in node.bases}
                if bases & {"nn.Module", "torch.nn.Module", "Module"}:
                    outside.append(f"{name}.{node.name}")
    assert outside == []


def test_each_network_class_has_one_name():
    names: dict[str, list[str]] = {}
    for name, path in package_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names.setdefault(node.name, []).append(name)
    assert {k: v for k, v in names.items() if len(v) > 1} == {}


def test_no_module_but_the_table_names_a_family_by_a_string():
    """config.py is the params schema: its option values ('srgan' variant, 'evaluator' features)
    and the evaluator section's name are values of params, not the table's families."""
    named = []
    for name, path in package_modules().items():
        if name in ("genmodels.families", "genmodels.config"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in FAMILIES:
                named.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert named == []
