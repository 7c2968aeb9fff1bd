"""The library's shape: no import cycle inside tfcondense/, function-level imports included.

A cycle hidden behind function-level imports still ties its modules together (none can
be understood, tested or moved alone), so every `import` statement counts, wherever it
sits. `from package import name` counts as importing the submodule `package.name` when
that is a module, else the package itself.
"""
from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Set

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules(package: str = "tfcondense", root: pathlib.Path = ROOT) -> Dict[str, pathlib.Path]:
  out = {}
  for path in sorted((root / package).rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts.pop()
    out[".".join(parts)] = path
  return out


def import_graph(modules: Dict[str, pathlib.Path]) -> Dict[str, Set[str]]:
  """module -> the modules of `modules` it imports (anywhere in its source)."""
  graph = {}
  for name, path in modules.items():
    is_package = path.name == "__init__.py"
    deps: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      if isinstance(node, ast.Import):
        deps.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom):
        if node.level:
          base = name.split(".") if is_package else name.split(".")[:-1]
          base = base[:len(base) - node.level + 1] + ([node.module] if node.module else [])
          target = ".".join(base)
        else:
          target = node.module
        subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
        deps |= subs
        if len(subs) < len(node.names):
          deps.add(target)
    graph[name] = {d for d in deps if d in modules and d != name}
  return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """Strongly connected components of more than one module (Tarjan), sorted."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  found: List[List[str]] = []

  def visit(v: str) -> None:
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
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return sorted(found)


def test_the_cycle_finder_finds_a_hidden_cycle(tmp_path):
  pkg = tmp_path / "pkg"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("from pkg import a\n")
  (pkg / "a.py").write_text("from pkg import b\n")
  (pkg / "b.py").write_text("def f():\n  from pkg.a import thing\n")  # function level
  (pkg / "c.py").write_text("import pkg.a\n")
  graph = import_graph(_modules("pkg", tmp_path))
  assert graph["pkg.b"] == {"pkg.a"} and graph["pkg"] == {"pkg.a"}
  assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_import_cycle_inside_tfcondense():
  found = cycles(import_graph(_modules()))
  assert not found, "import cycles (function-level imports count):\n" + "\n".join(
      " <-> ".join(c) for c in found)


def readme_layers(names):
  """The README's module map ("The library in a nutshell"): one list of top-level
  module / package names per line, in order; a line's names end at its first word
  that is not one of `names` (its description)."""
  text = (ROOT / "README.md").read_text(encoding="utf-8")
  block = text.split("## The library in a nutshell", 1)[1].split("```", 2)[1]
  layers = []
  for line in block.strip().splitlines():
    layer = []
    for word in line.split():
      word = word.rstrip("/")
      if word not in names:
        break
      layer.append(word)
    layers.append(layer)
  return layers


def test_imports_follow_the_readme_module_map():
  modules = _modules()
  tops = {m.split(".")[1] for m in modules if m.count(".") >= 1}
  layers = readme_layers(tops | {"apps", "benchmarks", "datasets_builders"})
  where = {name: i for i, layer in enumerate(layers) for name in layer}
  assert tops <= where.keys(), f"not in the README's map: {sorted(tops - where.keys())}"
  wrong = []
  for module, deps in import_graph(modules).items():
    if module.count(".") < 1:
      continue  # the package's own lazy __init__
    for dep in deps:
      if dep.count(".") >= 1 and where[dep.split(".")[1]] > where[module.split(".")[1]]:
        wrong.append(f"{module} imports {dep}, a layer below it in the README's map")
  assert not wrong, "\n".join(sorted(wrong))
