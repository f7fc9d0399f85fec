# Copyright (c) finers_mm contributors. All rights reserved.
"""finers_mm's layers import one way (DESIGN.md, "Layers, one way").

Every ``import`` / ``from ... import`` of finers_mm in the package is read from the source with
``ast`` (function-level and conditional imports included, so a cycle cannot hide in a function),
and each edge is checked against the layer order::

    structures, utils, registry  <-  datasets, models  <-  rl, evaluation  <-  apis, engine,
                                                                              visualization

A module may import its own subpackage and any subpackage of a LOWER layer; never one of its own
layer (datasets and models stay independent) or of a higher one. ``finers_mm.testing`` (tiny
models, synthetic data, scripted adapters) may import anything and nothing in the library imports
it. The package's top-level ``__init__`` and ``version`` sit below everything.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, NamedTuple

import pytest

import finers_mm

PACKAGE_DIR = osp.dirname(finers_mm.__file__)

LAYERS = (
    ('structures', 'utils', 'registry'),
    ('datasets', 'models'),
    ('rl', 'evaluation'),
    ('apis', 'engine', 'visualization'),
)
LAYER_OF: Dict[str, int] = {name: index for index, names in enumerate(LAYERS) for name in names}
#: parts of the package outside the layer order
TOP = ('', 'version')  # finers_mm/__init__.py, finers_mm/version.py
TESTING = 'testing'


class Edge(NamedTuple):
    """An import of ``target`` (a finers_mm module) in ``source`` at ``line``."""
    source: str
    target: str
    line: int
    in_function: bool


def _module_name(path: str) -> str:
    relative = osp.relpath(path, osp.dirname(PACKAGE_DIR))[:-len('.py')].replace(os.sep, '.')
    return relative[:-len('.__init__')] if relative.endswith('.__init__') else relative


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a (maybe relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ''
    base = module.split('.') if is_package else module.split('.')[:-1]
    base = base[:len(base) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def _edges() -> List[Edge]:
    edges = []
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(folder, name)
            module = _module_name(path)
            with open(path, encoding='utf-8') as f:
                tree = ast.parse(f.read(), path)
            functions = [n for n in ast.walk(tree)
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            nested = {id(child) for fn in functions for child in ast.walk(fn)}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    targets = [_resolve(module, name == '__init__.py', node)]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                else:
                    continue
                for target in targets:
                    if target == 'finers_mm' or target.startswith('finers_mm.'):
                        edges.append(Edge(module, target, node.lineno, id(node) in nested))
    return edges


def _part(module: str) -> str:
    """The top-level subpackage of a finers_mm module ('' for the package itself)."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _violation(edge: Edge):
    """Why ``edge`` breaks the layer order, or None."""
    source, target = _part(edge.source), _part(edge.target)
    if source == target or source == TESTING:
        return None
    if target == TESTING:
        return 'the library never imports finers_mm.testing'
    if target in TOP:
        return None
    if source in TOP:
        return None if LAYER_OF.get(target) == 0 else f'the package root imports {target!r}'
    if source not in LAYER_OF or target not in LAYER_OF:
        return f'{source!r} or {target!r} has no layer: add it to LAYERS'
    if LAYER_OF[target] == LAYER_OF[source]:
        return f'{source!r} and {target!r} are the same layer and stay independent'
    if LAYER_OF[target] > LAYER_OF[source]:
        return f'{source!r} (layer {LAYER_OF[source]}) imports the higher {target!r} ' \
               f'(layer {LAYER_OF[target]})'
    return None


EDGES = _edges()


def test_the_walk_sees_the_package():
    parts = {_part(edge.source) for edge in EDGES}
    assert {'structures', 'datasets', 'models', 'rl', 'evaluation', 'apis', TESTING} <= parts
    every_part = {name for name in os.listdir(PACKAGE_DIR)
                  if osp.isfile(osp.join(PACKAGE_DIR, name, '__init__.py'))}
    assert every_part <= set(LAYER_OF) | {TESTING}, 'a subpackage without a layer'


def test_imports_follow_the_layers():
    problems = [f'{edge.source}:{edge.line} imports {edge.target}: {why}'
                for edge in EDGES for why in [_violation(edge)] if why]
    assert not problems, '\n'.join(problems)


def test_finers_mm_imports_are_at_module_top():
    """A function-level import of finers_mm would hide a cycle; heavy optional dependencies may
    still be imported lazily (they are not finers_mm)."""
    hidden = [f'{edge.source}:{edge.line} imports {edge.target} inside a function'
              for edge in EDGES if edge.in_function and _part(edge.source) != TESTING]
    assert not hidden, '\n'.join(hidden)


@pytest.mark.parametrize('edge, expected', [
    (Edge('finers_mm.models.vlm_stage', 'finers_mm.rl.rewards', 1, True), 'higher'),
    (Edge('finers_mm.models.prompts', 'finers_mm.datasets.question_types', 1, False), 'same layer'),
    (Edge('finers_mm.models.mask_heads.sam', 'finers_mm.testing.tiny_models', 1, False),
     'never imports'),
    (Edge('finers_mm.evaluation.finers_metric', 'finers_mm.structures.answers', 1, False), None),
    (Edge('finers_mm.testing.chains', 'finers_mm.apis', 1, False), None),
])
def test_the_rule_catches_the_edges_it_must(edge, expected):
    why = _violation(edge)
    assert (why is None) if expected is None else (expected in why)


TESTS_DIR = osp.dirname(osp.abspath(__file__))


def test_test_modules_import_no_other_test_module():
    """Shared fixtures live in conftest.py, shared helpers in finers_mm.testing: no test module
    imports another (also not through a config's ``custom_imports`` in a subprocess)."""
    names = {osp.splitext(name)[0] for _, _, files in os.walk(TESTS_DIR) for name in files
             if name.startswith('test_') and name.endswith('.py')}
    offenders = []
    for folder, _, files in os.walk(TESTS_DIR):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(folder, name)
            with open(path, encoding='utf-8') as f:
                source = f.read()
            for node in ast.walk(ast.parse(source, path)):
                if isinstance(node, ast.ImportFrom) and not node.level:
                    imported = [node.module or '']
                elif isinstance(node, ast.Import):
                    imported = [alias.name for alias in node.names]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    imported = [m for m in names if f"'{m}'" in node.value]  # custom_imports
                else:
                    continue
                offenders += [f'{osp.relpath(path, TESTS_DIR)}:{node.lineno} imports {module}'
                              for module in imported if module.split('.')[0] in names]
    assert not offenders, '\n'.join(offenders)
