"""Packages of the tfcondense wheel (the rest of the metadata is in setup.cfg).

The repository keeps the apps and the TFDS builders at its top level (`apps/`,
`datasets_builders/`, run as `python -m apps.condense` from a checkout and found by
`tfds build --imports datasets_builders`). The wheel installs them inside the project's
own namespace, as `tfcondense.apps` and `tfcondense.datasets_builders`, so that they
cannot collide with another project's top-level `apps` or `datasets_builders`.

The apps import each other relatively, which works in both layouts; the builder
modules import `datasets_builders` by name (the folder form of `tfds build` loads them
outside any package), so `build_py` spells those imports as
`tfcondense.datasets_builders` in the copies it puts in the wheel.
"""
import os
import re

import setuptools
from setuptools.command import build_py

#: Top-level folders of the repository that install as `tfcondense.<name>`.
NAMESPACED = ("apps", "datasets_builders")
_IMPORT = re.compile(r"^(\s*)(from|import)\s+(" + "|".join(NAMESPACED) + r")\b(\.?)",
                     re.MULTILINE)


def namespaced_imports(text: str) -> str:
  """`text` with its imports of the top-level folders spelled inside `tfcondense`:
  `from datasets_builders import x` -> `from tfcondense.datasets_builders import x`,
  `import datasets_builders` -> `from tfcondense import datasets_builders`."""

  def spell(m):
    indent, keyword, name, dot = m.groups()
    if keyword == "from" or dot:
      return f"{indent}{keyword} tfcondense.{name}{dot}"
    return f"{indent}from tfcondense import {name}"

  return _IMPORT.sub(spell, text)


class BuildPy(build_py.build_py):
  """`build_py` that namespaces the imports of the copied modules (see above)."""

  def build_module(self, module, module_file, package):
    out = super().build_module(module, module_file, package)
    path = out[0]
    # An editable install links the sources themselves: never rewrite those.
    if path.endswith(".py") and not getattr(self, "editable_mode", False):
      with open(path, encoding="utf-8") as f:
        text = f.read()
      fixed = namespaced_imports(text)
      if fixed != text:
        os.remove(path)  # a new file, whatever the copy was
        with open(path, "w", encoding="utf-8") as f:
          f.write(fixed)
    return out


def packages():
  found = setuptools.find_packages(include=["tfcondense", "tfcondense.*"])
  for name in NAMESPACED:
    found += ["tfcondense." + p
              for p in setuptools.find_packages(include=[name, name + ".*"])]
  return found


if __name__ == "__main__":
  setuptools.setup(packages=packages(),
                   package_dir={f"tfcondense.{n}": n for n in NAMESPACED},
                   cmdclass={"build_py": BuildPy})
