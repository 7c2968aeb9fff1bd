"""Soft labels and DD-Ranking scores through the TFDS builders."""
import json

import numpy as np
import tensorflow_datasets as tfds

from datasets_builders import _condensed
from tfcondense import artifact as artifact_lib
from tfcondense import export
from tfcondense import soft_labels as soft_lib

SHIPPED = "datasets_builders/condensed_fashion_mnist/artifacts/idc_ipc1"
NAME = "condensed_fashion_mnist/idc_ipc1"


def test_soft_labels_are_a_feature_and_ddranking_scores_metadata(tmp_path):
  art = artifact_lib.load_artifact(SHIPPED)  # factor 2: 10 stored, 40 formed
  rng = np.random.default_rng(0)
  soft = soft_lib.SoftLabels(rng.normal(size=(10, 10)), kind="logits", temperature=2.0,
                             loss="kl")
  out = str(tmp_path / "art")
  artifact_lib.save_artifact(out, art.images, art.labels, art.meta, soft_labels=soft)
  with open(f"{out}/evaluation.json", "w") as f:
    json.dump({"acc_mean": 70.0, "acc_std": 1.0, "ddranking": {"hlr": 0.2, "ior": 0.05,
                                                                "lrs": 0.25, "ars": 0.28}}, f)
  data_dir = str(tmp_path / "tfds")
  builder = export.to_tfds(out, data_dir=data_dir)
  assert builder.info.version == _condensed.VERSION
  train = list(tfds.as_numpy(tfds.load(NAME, split="train", data_dir=data_dir)))
  stored = list(tfds.as_numpy(tfds.load(NAME, split="stored", data_dir=data_dir)))
  probs = soft.probabilities()
  np.testing.assert_allclose(np.stack([e["soft_label"] for e in stored]), probs, rtol=1e-6)
  np.testing.assert_allclose(np.stack([e["soft_label"] for e in train]),
                             np.repeat(probs, 4, axis=0), rtol=1e-6)
  meta = tfds.builder(NAME, data_dir=data_dir).info.metadata
  assert meta["recipe"]["soft_labels"]["kind"] == "logits"
  assert meta["recipe"]["storage"]["soft_label_bytes"] == 400
  assert meta["evaluation"]["ddranking"] == {"hlr": 0.2, "ior": 0.05, "lrs": 0.25,
                                             "ars": 0.28}


def test_a_hard_label_set_has_one_hot_soft_labels():
  art = artifact_lib.load_artifact(SHIPPED)
  formed, stored = _condensed.soft_distributions(art, 40, 10, np.repeat(art.labels, 4))
  np.testing.assert_array_equal(stored, np.eye(10, dtype=np.float32)[art.labels])
  assert formed.shape == (40, 10) and np.all(formed.sum(1) == 1)
