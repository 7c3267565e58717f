# Copyright (c) mmvan contributors. All rights reserved.
"""mmvan's layers point one way.

The order is the one written in the package docstring (``mmvan.__doc__``,
the line with the arrows); the README's layout section repeats it. These
tests read every module of the package with :mod:`ast` (nothing is
imported) and fail on

* an import of a higher layer, at module level or inside a function;
* an import cycle between modules;
* an import of an mmvan module inside a function (a reader must see from a
  file's head what it uses);
* a function-level import of anything but an optional third-party package,
  or one without a one-line reason on its line.

The checker itself is tested on small packages written for the purpose, so
a test that finds nothing has shown it can find something.
"""
import ast
import os
import os.path as osp
import textwrap

import pytest

import mmvan

PACKAGE_DIR = osp.dirname(mmvan.__file__)

# Modules under the first layer: the root imports only the version, the
# registries only mmengine.
BASE = ('mmvan', 'mmvan.version', 'mmvan.registry')
# Modules that are a layer of their own at the top, next to mmvan.cli.
TOP = {'mmvan.testing': 'cli'}
# Third-party packages a user may not have installed: imported where they
# are used, with the reason on the line.
OPTIONAL = {
    'onnx', 'onnxruntime', 'openvino', 'mmdet', 'mmseg', 'mmpose',
    'mmpretrain', 'pytorch_grad_cam', 'triton', 'safetensors'
}


def stated_layers(doc):
    """The layer names on the docstring's arrow lines, bottom first."""
    arrows = ' '.join(line for line in doc.splitlines() if '→' in line)
    if arrows:
        return [name.strip() for name in arrows.split('→')]
    raise AssertionError('the package docstring states no layer order (a '
                         "line 'utils → ops → ...')")


def _module_name(root, path, package):
    rel = osp.relpath(path, root)[:-3].replace(os.sep, '.')
    name = f'{package}.{rel}' if rel != '__init__' else package
    return name[:-len('.__init__')] if name.endswith('.__init__') else name


def read_package(root, package):
    """``{module: (path, tree, is_package)}`` for every ``.py`` under
    ``root``."""
    modules = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(('.', '_')))
        for file in sorted(files):
            if file.endswith('.py'):
                path = osp.join(folder, file)
                with open(path, encoding='utf-8') as f:
                    tree = ast.parse(f.read(), path)
                modules[_module_name(root, path,
                                     package)] = (path, tree,
                                                  file == '__init__.py')
    return modules


class Import:

    def __init__(self, module, line, target, local, text):
        self.module = module  # the importing module
        self.line = line
        self.target = target  # an absolute dotted name
        self.local = local  # inside a function
        self.text = text  # the source line(s)

    def where(self, modules):
        return f'{osp.relpath(modules[self.module][0])}:{self.line}'


def _targets(node, module, is_package, modules):
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split('.')
        if not is_package:
            base = base[:-1]
        base = base[:len(base) - node.level + 1]
        parent = '.'.join(base + ([node.module] if node.module else []))
    else:
        parent = node.module
    # ``from pkg import sub`` imports the module pkg.sub.
    subs = [f'{parent}.{a.name}' for a in node.names]
    found = [s for s in subs if s in modules]
    return found if found and len(found) == len(subs) else [parent] + found


def imports_of(modules):
    """Every import statement of every module, resolved."""
    found = []
    for module, (path, tree, is_package) in modules.items():
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
        functions = [
            n for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        local_nodes = {
            id(n)
            for fn in functions
            for n in ast.walk(fn)
            if isinstance(n, (ast.Import, ast.ImportFrom))
        }
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            text = '\n'.join(lines[node.lineno - 1:node.end_lineno])
            for target in _targets(node, module, is_package, modules):
                found.append(
                    Import(module, node.lineno, target,
                           id(node) in local_nodes, text))
    return found


def layer_of(module, package, layers):
    """Index of ``module``'s layer; base modules are -1."""
    if module in (package, f'{package}.version', f'{package}.registry'):
        return -1
    if module in TOP:
        return layers.index(TOP[module])
    name = module.split('.')[1]
    if name not in layers:
        raise AssertionError(
            f'{module} belongs to no stated layer: add {name!r} to the '
            f'layer order in the package docstring')
    return layers.index(name)


def first_party(target, package):
    return target == package or target.startswith(package + '.')


def cycles(modules, imports, package):
    """Strongly connected groups of more than one module (Tarjan)."""
    graph = {m: set() for m in modules}
    for imp in imports:
        if not first_party(imp.target, package):
            continue
        # Importing a.b.c runs a/__init__ and a/b/__init__ first: the
        # packages above the target that do not hold the importer are
        # imported too.
        parts = imp.target.split('.')
        for i in range(2, len(parts) + 1):
            name = '.'.join(parts[:i])
            implicit = name != imp.target
            if name in modules and name != imp.module and not (
                    implicit and imp.module.startswith(name + '.')):
                graph[imp.module].add(name)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def check_package(root, package, layers):
    """Every breach of the layering rules, one line each."""
    modules = read_package(root, package)
    imports = imports_of(modules)
    problems = []
    for imp in imports:
        if first_party(imp.target, package):
            if imp.local:
                problems.append(f'{imp.where(modules)}: {imp.module} '
                                f'imports {imp.target} inside a function')
            src = layer_of(imp.module, package, layers)
            dst = layer_of(imp.target, package, layers)
            if dst > src:
                problems.append(
                    f'{imp.where(modules)}: {imp.module} '
                    f'({layers[src] if src >= 0 else "base"}) imports '
                    f'{imp.target} ({layers[dst]}), a higher layer')
        elif imp.local:
            top = imp.target.split('.')[0]
            if top not in OPTIONAL:
                problems.append(
                    f'{imp.where(modules)}: {imp.module} imports {top} '
                    f'inside a function; only optional packages '
                    f'({", ".join(sorted(OPTIONAL))}) may be imported there')
            elif '#' not in imp.text:
                problems.append(f'{imp.where(modules)}: the local import of '
                                f'{top} needs a one-line reason comment')
    for group in cycles(modules, imports, package):
        problems.append('import cycle: ' + ' -> '.join(group))
    return problems


LAYERS = stated_layers(mmvan.__doc__ or '')


def test_stated_order_names_every_layer():
    subpackages = sorted(
        name for name in os.listdir(PACKAGE_DIR)
        if osp.isfile(osp.join(PACKAGE_DIR, name, '__init__.py')))
    modules = sorted(name[:-3] for name in os.listdir(PACKAGE_DIR)
                     if name.endswith('.py') and name != '__init__.py')
    for name in subpackages + modules:
        if f'mmvan.{name}' in BASE or f'mmvan.{name}' in TOP:
            continue
        assert name in LAYERS, (f'mmvan.{name} is in no layer of the '
                                f'stated order {LAYERS}')


def test_readme_repeats_the_order():
    with open(osp.join(osp.dirname(PACKAGE_DIR), 'README.md')) as f:
        readme = f.read()
    assert ' → '.join(LAYERS) in readme


def test_mmvan_imports_follow_the_layers():
    problems = check_package(PACKAGE_DIR, 'mmvan', LAYERS)
    assert not problems, '\n'.join(problems)


# The checker on packages written to break each rule.


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _problems(tmp_path, files):
    _write(tmp_path / 'pkg', {'__init__.py': '', **files})
    return check_package(str(tmp_path / 'pkg'), 'pkg', ['low', 'high'])


def test_checker_passes_a_clean_package(tmp_path):
    assert _problems(
        tmp_path, {
            'low/__init__.py':
            'from .a import f\n',
            'low/a.py':
            'import os\n\ndef f():\n    return os.sep\n',
            'high/__init__.py':
            'from pkg.low import f\n',
            'high/b.py': ('from ..low.a import f\n\n\ndef g():\n'
                          '    import mmdet  # optional: detection only\n'),
        }) == []


def test_checker_finds_an_upward_import(tmp_path):
    problems = _problems(
        tmp_path, {
            'low/__init__.py': 'from pkg.high import g\n',
            'high/__init__.py': 'def g():\n    pass\n',
        })
    assert len(problems) == 1
    assert 'pkg.low (low) imports pkg.high (high), a higher layer' in (
        problems[0])
    assert problems[0].startswith(osp.relpath(tmp_path / 'pkg/low'))


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    problems = _problems(
        tmp_path, {
            'low/__init__.py': '',
            'low/a.py': 'from . import b\n',
            'low/b.py': 'def f():\n    from .a import x\n',
        })
    assert any('pkg.low.b imports pkg.low.a inside a function' in p
               for p in problems)
    assert 'import cycle: pkg.low.a -> pkg.low.b' in problems


def test_checker_finds_a_cycle_through_a_package_init(tmp_path):
    # high.b imports low.a; importing low.a runs low/__init__, which
    # imports high.b back.
    problems = _problems(
        tmp_path, {
            'low/__init__.py': 'from .a import x\nfrom pkg.high.b import y\n',
            'low/a.py': 'x = 1\n',
            'high/__init__.py': '',
            'high/b.py': 'from pkg.low.a import x\ny = 2\n',
        })
    assert 'import cycle: pkg.high.b -> pkg.low' in problems


def test_checker_finds_a_module_level_cycle(tmp_path):
    problems = _problems(
        tmp_path, {
            'low/__init__.py': 'from .a import x\n',
            'low/a.py': 'from pkg.low import y\nx = 1\n',
        })
    assert problems == ['import cycle: pkg.low -> pkg.low.a']


@pytest.mark.parametrize('body, message', [
    ('import json', 'imports json inside a function'),
    ('import torch.nn', 'imports torch inside a function'),
    ('import onnxruntime', 'needs a one-line reason comment'),
])
def test_checker_finds_local_third_party_imports(tmp_path, body, message):
    problems = _problems(tmp_path, {
        'low/__init__.py': f'def f():\n    {body}\n',
    })
    assert len(problems) == 1 and message in problems[0], problems


def test_checker_needs_every_module_in_a_layer(tmp_path):
    with pytest.raises(AssertionError, match="add 'extra' to the layer"):
        _problems(tmp_path, {
            'low/__init__.py': 'from pkg.extra import z\n',
            'extra.py': 'z = 1\n'
        })
