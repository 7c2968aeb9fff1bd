r"""Synthesise a spoken-commands corpus with espeak-ng (an offline Mini Speech Commands).

Example (about 1-2 minutes on the 2-core CPU machine):

  python -m apps.make_speech --out data/speech --clips_per_word 300 --seed 0

writes data/speech/<word>/synth_00000.wav ... for the 8 words down go left no right
stop up yes (16 kHz mono, 1 s, random accent, voice, rate, pitch, intonation, level,
position and background noise per clip), a README.txt saying the speech is synthetic
and a manifest.csv of every clip's settings. The same seed reproduces the files byte
for byte. Then:

  python -m apps.condense --source speech_commands --data_dir data/speech ...

(or set TFCONDENSE_SPEECH_DIR=data/speech). Needs `apt-get install espeak-ng`.
"""
from __future__ import annotations

from absl import flags

from . import _common

_OUT = flags.DEFINE_string("out", None, "Corpus folder to write (<out>/<word>/*.wav).")
_CLIPS = flags.DEFINE_integer("clips_per_word", 300, "Clips per word.")
_SEED = flags.DEFINE_integer("seed", 0, "Corpus seed (same seed -> identical files).")
_WORDS = flags.DEFINE_list("words", None,
                           "Words to speak (default: down,go,left,no,right,stop,up,yes; "
                           "the speech_commands source needs exactly those 8).")
_WORKERS = flags.DEFINE_integer("workers", None,
                                "Clips rendered at once (default min(4, CPUs)); does not "
                                "change the files.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False,
                               "Replace the WAV files of a corpus already in --out.")
flags.mark_flag_as_required("out")


@_common.friendly_errors
def main(argv):
  del argv
  from tfcondense.speech import synth  # pylint: disable=g-import-not-at-top

  summary = synth.generate_corpus(
      _OUT.value, clips_per_word=_CLIPS.value, seed=_SEED.value,
      words=_WORDS.value or synth.WORDS, workers=_WORKERS.value,
      overwrite=_OVERWRITE.value)
  print(f"wrote {summary.num_clips} synthetic clips ({len(summary.words)} words x "
        f"{summary.clips_per_word}) to {summary.out} in {summary.seconds:.1f} s "
        f"({summary.espeak_version})")
  print(f"load it with load_source('speech_commands', path={summary.out!r}) or "
        f"--data_dir {summary.out}")


def run():
  """The `tfcondense-make-speech` command."""
  _common.run(main)


if __name__ == "__main__":
  run()
