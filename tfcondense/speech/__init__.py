"""Speech: spoken-command spectrograms for dataset condensation (IDC's speech setting).

* `tfcondense.speech.audio`: WAV reading/writing, resampling, the reference's 64x64
  log-magnitude spectrogram and its Griffin-Lim inversion.
* `tfcondense.speech.synth`: a synthetic spoken-commands corpus made with espeak-ng
  (`python -m apps.make_speech --out DIR`).
* The `speech_commands` data source (`tfcondense.data.load_source("speech_commands")`)
  is in `tfcondense/data/speech.py`; `python -m apps.listen` turns a condensed artifact
  back into WAV files.

Importing this package does not import TensorFlow.
"""
from __future__ import annotations

from tfcondense.speech import audio
from tfcondense.speech import synth
from tfcondense.speech.audio import (griffin_lim, read_wav, resample, spectrogram,
                                     spectrograms, write_wav)
from tfcondense.speech.synth import WORDS, generate_corpus

__all__ = ["WORDS", "audio", "generate_corpus", "griffin_lim", "read_wav", "resample",
           "spectrogram", "spectrograms", "synth", "write_wav"]
