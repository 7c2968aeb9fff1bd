"""The model zoo: registry, builders, initialisation and normalisation layers.

    model = build_model("convnet3", (32, 32, 3), 10, seed=0)
    features = embedding_model(model)
    initialize(model, seed=1)  # re-draw in place for the next repetition
"""
from __future__ import annotations

from tfcondense.models.core import EMBEDDING, MODELS, build_model, embedding_model
from tfcondense.models.init import SCHEMES, initialize, resets_all_state
from tfcondense.models.layers import (NORMS, BatchNorm, InstanceNorm, LayerNorm,
                                      TokenNorm)

# Importing the architecture modules registers them.
from tfcondense.models import convnet as _convnet  # noqa: F401,E402
from tfcondense.models import densenet as _densenet  # noqa: F401,E402
from tfcondense.models import efficientnet as _efficientnet  # noqa: F401,E402
from tfcondense.models import mlp as _mlp  # noqa: F401,E402
from tfcondense.models import nas201 as _nas201  # noqa: F401,E402
from tfcondense.models import resnet as _resnet  # noqa: F401,E402
from tfcondense.models import vit as _vit  # noqa: F401,E402

__all__ = [
    "EMBEDDING", "MODELS", "NORMS", "SCHEMES", "BatchNorm", "InstanceNorm",
    "LayerNorm", "TokenNorm",
    "build_model", "embedding_model", "initialize", "resets_all_state",
]
