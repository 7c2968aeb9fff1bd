r"""Listen to a condensed speech set: turn an artifact's spectrograms into WAV files.

Example:

  python -m apps.listen --artifact runs/idc_speech/artifact --out runs/idc_speech/wav \
      --per_class 2

decodes the artifact's stored images with its formation (`time` for IDC speech), takes
the first --per_class formed spectrograms of each word, inverts each with Griffin-Lim
(`tfcondense.speech.audio.griffin_lim`) and writes <out>/<word>_<k>.wav (16 kHz mono,
1 s, peak-normalised), so you can hear what a condensed "yes" sounds like. The 64x64
spectrograms hold no phase and little detail: expect a rough, buzzy word.
"""
from __future__ import annotations

import os

from absl import flags

from . import _common

_ARTIFACT = flags.DEFINE_string("artifact", None,
                                "Artifact directory of a speech_commands condensed set.")
_OUT = flags.DEFINE_string("out", None, "Folder for the WAV files.")
_PER_CLASS = flags.DEFINE_integer("per_class", 2, "Formed spectrograms per word to write.")
_STORED = flags.DEFINE_bool("stored", False,
                            "Write the stored images instead of the formed ones.")
_ITERATIONS = flags.DEFINE_integer("iterations", 64, "Griffin-Lim iterations.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of Griffin-Lim's initial phase.")
_NORMALIZE = flags.DEFINE_bool("normalize", True, "Scale each clip to a peak of 0.9.")
flags.mark_flags_as_required(["artifact", "out"])


@_common.friendly_errors
def main(argv):
  del argv
  _common.quiet_tensorflow()
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
  from tfcondense.data import speech  # pylint: disable=g-import-not-at-top
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top
  from tfcondense.speech import audio  # pylint: disable=g-import-not-at-top

  if _PER_CLASS.value < 1:
    raise InvalidConfigError(f"--per_class must be at least 1, got {_PER_CLASS.value}")
  art = artifact_lib.load_artifact(_ARTIFACT.value)
  if tuple(art.images.shape[1:]) != (audio.SIZE, audio.SIZE, 1):
    raise InvalidConfigError(
        f"{_ARTIFACT.value} holds {art.images.shape[1:]} images, not 64x64x1 "
        f"spectrograms (source {art.meta.get('source')!r}); this app only plays "
        "speech_commands artifacts.")
  if _STORED.value:
    images, labels = art.images, art.labels
  else:
    images, labels = synthetic.formed_from_artifact(art, art.weights)
  names = list(art.meta.get("class_names") or speech.CLASS_NAMES)
  chosen = []
  for c in np.unique(labels):
    rows = np.flatnonzero(labels == c)[:_PER_CLASS.value]
    chosen += [(int(c), k, int(r)) for k, r in enumerate(rows)]
  waves = audio.griffin_lim(images[[r for _, _, r in chosen]][..., 0], scale="unit",
                            iterations=_ITERATIONS.value, seed=_SEED.value)
  os.makedirs(_OUT.value, exist_ok=True)
  for (c, k, _), wave in zip(chosen, waves):
    name = names[c] if c < len(names) else str(c)
    peak = float(np.max(np.abs(wave)))
    if _NORMALIZE.value and peak > 0:
      wave = wave * (0.9 / peak)
    audio.write_wav(os.path.join(_OUT.value, f"{name}_{k}.wav"), wave)
  kind = "stored" if _STORED.value else "formed"
  print(f"wrote {len(chosen)} WAV files ({kind} spectrograms, {_ITERATIONS.value} "
        f"Griffin-Lim iterations) to {os.path.abspath(_OUT.value)}")


def run():
  """The `tfcondense-listen` command."""
  _common.run(main)


if __name__ == "__main__":
  run()
