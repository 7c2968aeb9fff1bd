"""tfcondense: dataset condensation and its fair evaluation in TensorFlow / Keras 3.

Importing the package is cheap: submodules (and TensorFlow) load on first use.

    import tfcondense as tfc
    source = tfc.load_source("fashion_mnist")
    res = tfc.condense("kcenter", source, ipc=10, evaluate="cpu")   # selection
    res = tfc.condense("idc", source, ipc=10, options=tfc.RunOptions(minutes=5))
    print(tfc.evaluate_artifact(res.artifact, source, protocol="cpu"))
    print(tfc.evaluate(images, labels, source, protocol="cpu"))  # any images

`tfc.method_names()` lists every method, selection and synthesis alike. Condensed sets
for Keras: `tfc.load("condensed_fashion_mnist/idc_ipc10", split=["train", "test"])`.
"""
from __future__ import annotations

from tfcondense._lazy import module_getattr

__version__ = "0.1.0"

_LAZY = {
    "load_source": "tfcondense.data",
    "SourceData": "tfcondense.data",
    "build_model": "tfcondense.models",
    "Protocol": "tfcondense.evaluation",
    "evaluate": "tfcondense.evaluation",
    "condense": "tfcondense.api",
    "CondenseResult": "tfcondense.api",
    "evaluate_artifact": "tfcondense.api",
    "method_names": "tfcondense.api",
    "select": "tfcondense.methods",
    "Artifact": "tfcondense.artifact",
    "save_artifact": "tfcondense.artifact",
    "load_artifact": "tfcondense.artifact",
    "SyntheticSet": "tfcondense.synthetic",
    "formed_from_artifact": "tfcondense.synthetic",
    "make_formation": "tfcondense.formation",
    "RunOptions": "tfcondense.engine",
    "load": "tfcondense.export",
    "load_test": "tfcondense.export",
    "import_set": "tfcondense.interop",
    "export_set": "tfcondense.interop",
}

#: Submodules reachable as attributes (`tfc.export.to_tfds(...)`), imported on first use.
_SUBMODULES = ("api", "atomic", "bench", "cluster", "condensation", "continual", "engine",
               "evaluation", "experiment", "export", "formation", "interop", "soft_labels",
               "synthetic", "training")

__all__ = ["__version__"] + list(_LAZY) + list(_SUBMODULES)

__getattr__ = module_getattr(__name__, _LAZY, _SUBMODULES)
