r"""Export a condensed set for PyTorch users: MTT's `.pt` layout or a plain `.npz`.

Example (a second or two; no PyTorch needed):

  python -m apps.export --artifact datasets_builders/condensed_fashion_mnist/artifacts/dm_ipc10 \
      --format pt --out runs/export/dm_ipc10

writes runs/export/dm_ipc10/images_best.pt (the formed training images, normalised with
the source's mean / std, float32 NCHW), labels_best.pt (int64), lr_best.pt (a learned
lr, where the set has one), soft_labels_best.pt (where it has soft labels) and
tfcondense_meta.json, the layout MTT / DATM's evaluation scripts load with `torch.load`.
`--format npz` writes one .npz (stored images NHWC in [0, 1], labels, soft labels and
meta.json as a string) that `np.load(path)` reads without pickle. Import either back
with `python -m apps.evaluate --import PATH --format mtt|npz`.
"""
from __future__ import annotations

from absl import flags

from . import _common

_ARTIFACT = flags.DEFINE_string("artifact", None, "Artifact directory (images.npy, "
                                "labels.npy, meta.json) to export.")
_FORMAT = flags.DEFINE_enum("format", "pt", ["pt", "npz"],
                            "pt: MTT's folder of .pt files for torch.load; npz: one .npz.")
_OUT = flags.DEFINE_string("out", None, "Output folder (pt) or file (npz); default "
                           "<artifact>_mtt or <artifact>.npz.")
flags.mark_flags_as_required(["artifact"])


@_common.friendly_errors
def main(argv):
  del argv
  _common.quiet_tensorflow()
  from tfcondense import interop  # pylint: disable=g-import-not-at-top
  src = _ARTIFACT.value.rstrip("/")
  out = _OUT.value or (src + ("_mtt" if _FORMAT.value == "pt" else ".npz"))
  path = interop.export_set(src, out, _FORMAT.value)
  print(f"exported {src} as {_FORMAT.value} to {path}")


def run():
  """The `tfcondense-export` command."""
  _common.run(main)


if __name__ == "__main__":
  run()
