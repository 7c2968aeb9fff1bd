"""Spoken commands as 64x64 log-magnitude spectrograms (IDC's speech experiments).

Kim et al. (ICML 2022, "Dataset Condensation via Efficient Synthetic-Data
Parameterization") condense Mini Speech Commands: the 8 words ``down go left no right
stop up yes`` of Speech Commands (Warden, 2018), 1000 one-second 16 kHz clips each. The
spectrogram pipeline is `tfcondense.speech.audio` (the reference's, to float
precision); this module finds the clips, splits them and builds the SourceData.

Stored scale. SourceData images are in [0, 1]; a log spectrogram L lies in the fixed
interval [LOG_LO, LOG_HI] = [log(1e-3), log(127.5 + 1e-3)] for any waveform in [-1, 1],
so the images are u = (L - LOG_LO) / (LOG_HI - LOG_LO), with bounds that depend on no
data (every split, corpus and condensed image shares them; `audio.from_unit` inverts
them with nothing else at hand). `mean` and `std` are the scalar mean and (population)
std of the train images u. The map is affine, so the usual normalisation
(u - mean) / std equals (L - mean_L) / std_L, the reference's standardisation with the
scalar train mean and std of L, exactly (up to float rounding).
"""
from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from typing import Iterable, Optional, Sequence

import numpy as np
from absl import logging

from tfcondense.data.common import check_limit, prepare_command, resolve_dir
from tfcondense.data.info import SourceInfo, register_info
from tfcondense.data.sources import SOURCES
from tfcondense.data.store import SourceData
from tfcondense.errors import SourceUnavailableError, check_choice
from tfcondense.speech import audio

CLASS_NAMES = ("down", "go", "left", "no", "right", "stop", "up", "yes")
ENV_VAR = "TFCONDENSE_SPEECH_DIR"
TEST_EVERY = 8  # file index % 8 == 0 -> test (the reference's split)
BACKENDS = ("folder", "tfds")
TFDS_NAME = "speech_commands"
SUBFOLDER = "mini_speech_commands"  # the name the official zip extracts to
LAYOUT = ("<root>/<word>/*.wav for the 8 words " + " ".join(CLASS_NAMES) +
          " (16 kHz mono WAV, 1 s)")
LISTED = 20  # file names shown in a warning


@dataclasses.dataclass(frozen=True)
class LoadReport:
  """What one `speech_commands` load did with its audio files.

  Attributes:
    root: the corpus folder (or the tfds data_dir).
    backend: "folder" or "tfds".
    loaded: clips turned into spectrograms.
    skipped: (file, reason) of every unreadable, empty or unsupported file (no
      spectrogram was made for it; its split index is still counted).
    resampled: (file, original rate in Hz) of every clip resampled to 16 kHz.
    downmixed: files with several channels, averaged to mono.
    truncated: clips longer than 1 s (cut at 1 s, as the reference does).
    clipped: float WAV files with samples outside [-1, 1] (clipped).
  """

  root: str
  backend: str
  loaded: int = 0
  skipped: tuple = ()
  resampled: tuple = ()
  downmixed: tuple = ()
  truncated: int = 0
  clipped: tuple = ()

  def summary(self) -> str:
    return (f"speech_commands ({self.backend}, {self.root}): {self.loaded} clips loaded, "
            f"{len(self.skipped)} skipped, {len(self.resampled)} resampled to 16 kHz, "
            f"{len(self.downmixed)} downmixed to mono, {self.truncated} cut to 1 s, "
            f"{len(self.clipped)} clipped to [-1, 1]")


_last_report: Optional[LoadReport] = None
_report_lock = threading.Lock()


def last_load_report() -> Optional[LoadReport]:
  """The LoadReport of the most recent `speech_commands` load in this process.

  A load answered from `load_source`'s cache does not read files and leaves it
  unchanged; pass `cache=False` to get a fresh report.
  """
  return _last_report


def split_is_test(index: int) -> bool:
  """The reference's split: file `index` (0-based, in sorted order) goes to test iff
  index % 8 == 0."""
  return index % TEST_EVERY == 0


# Spectrograms (time along the height) have corpus-dependent statistics; IDC evaluates
# them with ConvNet-4 and no augmentation (Kim et al. 2022, speech/ of the reference).
register_info(SourceInfo("speech_commands", "Speech Commands (8 words)", (64, 64, 1),
                         len(CLASS_NAMES), kind="spectrogram", flip_safe=False,
                         eval_model="convnet4", eval_augmentation="none"))


@SOURCES.register("speech_commands")
def speech_commands(*, path: Optional[str] = None, limit_per_class: Optional[int] = None,
                    backend: str = "folder") -> SourceData:
  """Mini Speech Commands (or a corpus in its layout) as [N, 64, 64, 1] spectrograms.

  Pipeline (`tfcondense.speech.audio`, as the IDC reference code): 16 kHz waveform in
  [-1, 1] cut or zero-padded to 16000 samples -> centred STFT (reflect padding 127,
  periodic Hann 255, hop 128, FFT 255) -> |STFT| [125 time, 128 freq] -> time padded by
  (1, 2) zero frames [128, 128] -> bilinear resize [64, 64] -> log(x + 1e-3) -> the
  fixed [0, 1] scale of the module docstring. Images are [N, 64 (time), 64 (freq), 1],
  so time is axis 1 (H) and the `time` formation with axis=1 cuts along time.

  Backends:
    "folder": `path` (else $TFCONDENSE_SPEECH_DIR) holds one folder of WAV files per
      word, ``<root>/<word>/*.wav`` (``<root>/mini_speech_commands/<word>/`` is found
      too): the official mini_speech_commands.zip extracted, or a synthetic corpus
      from `python -m apps.make_speech --out DIR`. Split as the reference: each word's
      *.wav files sorted by name, index % 8 == 0 -> test (1/8), the rest train.
      Unreadable, empty or unsupported files are skipped (never zero-filled), keeping
      their index so the split of the other files does not move; other sample rates
      are resampled to 16 kHz (`audio.resample`, band-limited polyphase); several
      channels are averaged. Each is named in one warning per load and counted in
      `last_load_report()`, and a summary line is logged.
    "tfds": the tfds `speech_commands` dataset (Warden 2018, the full 35-word
      release) prepared under `path` (else $TFDS_DATA_DIR, else ~/tensorflow_datasets);
      nothing is downloaded. Its train and test splits are used (validation is not);
      examples of the other words, `_silence_` and `_unknown_` are dropped.

  Args:
    path: the folder (backend "folder") or the tfds data_dir (backend "tfds").
    limit_per_class: keep only the first N train clips of each word (only those are
      decoded).
    backend: "folder" or "tfds".

  Returns:
    The SourceData: classes down go left no right stop up yes; mean/std are the
    scalar statistics of the train images (see the module docstring).

  Raises:
    SourceUnavailableError: no location given, a missing word folder (named), a word
      with no readable clip, or tfds data not prepared.
    InvalidConfigError: a bad option value.
  """
  check_limit(limit_per_class)
  backend = check_choice("speech_commands backend", backend, BACKENDS)
  if backend == "tfds":
    return _load_tfds(path, limit_per_class)
  return _load_folder(path, limit_per_class)


# ------------------------------------------------------------------------ folders
def _resolve_root(path: Optional[str]) -> str:
  root = resolve_dir(path, ENV_VAR)
  if root is None:
    raise SourceUnavailableError(
        "speech_commands needs a folder of spoken commands: pass path=... or set "
        f"{ENV_VAR}. Make a synthetic one with `python -m apps.make_speech --out DIR` "
        "(espeak-ng), or download the recorded Mini Speech Commands "
        "(http://storage.googleapis.com/download.tensorflow.org/data/"
        "mini_speech_commands.zip), unzip it and point path at it. Expected layout: "
        f"{LAYOUT}.")
  if not os.path.isdir(root):
    raise SourceUnavailableError(
        f"speech_commands folder {root} does not exist. Make one with "
        f"`python -m apps.make_speech --out {root}` or unzip mini_speech_commands.zip "
        f"there. Expected layout: {LAYOUT}.")
  nested = os.path.join(root, SUBFOLDER)
  if not os.path.isdir(os.path.join(root, CLASS_NAMES[0])) and os.path.isdir(nested):
    return nested
  return root


def list_clips(root: str) -> dict[str, list[str]]:
  """word -> its *.wav files, sorted by name (the order the split indexes).

  Raises:
    SourceUnavailableError: a word folder is missing or holds no .wav file.
  """
  clips = {}
  for word in CLASS_NAMES:
    folder = os.path.join(root, word)
    if not os.path.isdir(folder):
      raise SourceUnavailableError(
          f"speech_commands: missing word folder {folder}; expected layout: {LAYOUT}.")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(".wav"))
    if not files:
      raise SourceUnavailableError(
          f"speech_commands: word folder {folder} holds no .wav files; expected layout: "
          f"{LAYOUT}.")
    clips[word] = [os.path.join(folder, f) for f in files]
  return clips


class _Collector:
  """Decodes clips to 16 kHz mono waveforms, recording every fix-up and skip."""

  def __init__(self, root: str, backend: str):
    self.root, self.backend = root, backend
    self.skipped, self.resampled, self.downmixed, self.clipped = [], [], [], []
    self.truncated = 0
    self.loaded = 0

  def waveform(self, samples: np.ndarray, rate: int, name: str) -> np.ndarray:
    mono, mixed = audio.to_mono(samples)
    if mixed:
      self.downmixed.append(name)
    if np.any(np.abs(mono) > 1.0):
      self.clipped.append(name)
      mono = np.clip(mono, -1.0, 1.0)
    if rate != audio.SAMPLE_RATE:
      self.resampled.append((name, int(rate)))
      mono = np.clip(audio.resample(mono, rate, audio.SAMPLE_RATE), -1.0, 1.0)
    if len(mono) > audio.CLIP_SAMPLES:
      self.truncated += 1
    self.loaded += 1
    return audio.fix_length(mono)

  def read(self, path: str) -> Optional[np.ndarray]:
    """The clip's waveform, or None (recorded as skipped) if it cannot be used."""
    try:
      wav = audio.read_wav(path)
    except SourceUnavailableError as e:
      self.skipped.append((path, str(e).removeprefix(path + ": ")))
      return None
    if len(wav.samples) == 0:
      self.skipped.append((path, "no audio samples"))
      return None
    return self.waveform(wav.samples, wav.rate, path)

  def report(self) -> LoadReport:
    return LoadReport(root=self.root, backend=self.backend, loaded=self.loaded,
                      skipped=tuple(self.skipped), resampled=tuple(self.resampled),
                      downmixed=tuple(self.downmixed), truncated=self.truncated,
                      clipped=tuple(self.clipped))


def _load_folder(path: Optional[str], limit: Optional[int]) -> SourceData:
  root = _resolve_root(path)
  clips = list_clips(root)
  collector = _Collector(root, "folder")
  splits = {"train": _Spectrograms(), "test": _Spectrograms()}
  for label, word in enumerate(CLASS_NAMES):
    kept = {"train": 0, "test": 0}
    for index, file in enumerate(clips[word]):
      split = "test" if split_is_test(index) else "train"
      if split == "train" and limit is not None and kept["train"] >= limit:
        continue
      wave = collector.read(file)
      if wave is None:
        continue
      splits[split].add(wave, label)
      kept[split] += 1
    if not kept["train"]:
      raise SourceUnavailableError(
          f"speech_commands: no readable training clip in {os.path.join(root, word)} "
          f"({len(clips[word])} .wav files; {_reasons(collector.skipped, word)}).")
  return _finish(collector, splits)


def _reasons(skipped: Sequence[tuple], word: str) -> str:
  mine = [f"{os.path.basename(p)}: {r}" for p, r in skipped
          if os.path.basename(os.path.dirname(p)) == word]
  return "; ".join(mine[:3]) or "every file is in the test split"


class _Spectrograms:
  """Turns waveforms into unit-scale spectrograms in chunks (peak memory: one chunk of
  waveforms plus the 16 KiB spectrograms)."""

  CHUNK = 512

  def __init__(self):
    self.waves, self.labels, self.chunks = [], [], []

  def __len__(self) -> int:
    return len(self.labels)

  def add(self, wave: np.ndarray, label: int) -> None:
    self.waves.append(wave)
    self.labels.append(label)
    if len(self.waves) >= self.CHUNK:
      self._flush()

  def _flush(self) -> None:
    if self.waves:
      self.chunks.append(audio.to_unit(audio.spectrograms(self.waves)))
      self.waves = []

  def arrays(self) -> tuple[np.ndarray, np.ndarray]:
    self._flush()
    x = np.concatenate(self.chunks) if self.chunks else \
        np.zeros((0, audio.SIZE, audio.SIZE), np.float32)
    return x[..., None], np.asarray(self.labels, np.int32)


def _finish(collector: _Collector, splits: dict) -> SourceData:
  x, y = splits["train"].arrays()
  tx, ty = splits["test"].arrays()
  mean = float(x.mean(dtype=np.float64))
  std = float(x.std(dtype=np.float64))
  if not std > 0:
    raise SourceUnavailableError(
        f"speech_commands: the {len(x)} training spectrograms are all equal (silent "
        f"clips?) in {collector.root}; their standard deviation is 0.")
  report = collector.report()
  _publish(report)
  return SourceData(name="speech_commands", train_images=x, train_labels=y,
                    test_images=tx, test_labels=ty, class_names=CLASS_NAMES,
                    mean=(mean,), std=(std,))


def _publish(report: LoadReport) -> None:
  global _last_report
  with _report_lock:
    _last_report = report
  logging.info("%s", report.summary())
  if report.skipped:
    warnings.warn(
        f"speech_commands: skipped {len(report.skipped)} unusable audio file(s) (no "
        f"spectrogram made): {_listing(f'{p} ({r})' for p, r in report.skipped)}",
        stacklevel=6)
  if report.resampled:
    warnings.warn(
        f"speech_commands: resampled {len(report.resampled)} clip(s) to 16 kHz: "
        f"{_listing(f'{p} ({r} Hz)' for p, r in report.resampled)}", stacklevel=6)
  if report.downmixed or report.clipped:
    warnings.warn(
        f"speech_commands: averaged {len(report.downmixed)} multi-channel file(s) to "
        f"mono and clipped {len(report.clipped)} float file(s) to [-1, 1]: "
        f"{_listing(list(report.downmixed) + list(report.clipped))}", stacklevel=6)


def _listing(items: Iterable[str]) -> str:
  items = list(items)
  shown = ", ".join(items[:LISTED])
  return shown + (f", ... and {len(items) - LISTED} more" if len(items) > LISTED else "")


# --------------------------------------------------------------------------- tfds
def tfds_label_map(tfds_names: Sequence[str]) -> np.ndarray:
  """int32 [len(tfds_names)]: our class index of each tfds label, -1 for the others.

  E.g. tfds `speech_commands` names ('down', 'go', 'left', 'no', 'off', 'on', 'right',
  'stop', 'up', 'yes', '_silence_', '_unknown_') map to
  [0, 1, 2, 3, -1, -1, 4, 5, 6, 7, -1, -1].
  """
  ours = {w: i for i, w in enumerate(CLASS_NAMES)}
  return np.array([ours.get(str(n).strip().lower(), -1) for n in tfds_names], np.int32)


def _load_tfds(path: Optional[str], limit: Optional[int]) -> SourceData:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfcondense.data import tfds_sources  # pylint: disable=g-import-not-at-top

  data_dir = os.path.expanduser(os.fspath(path)) if path is not None else None
  shown = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  collector = _Collector(shown, "tfds")
  unavailable = tfds_sources._unavailable_errors()  # pylint: disable=protected-access
  splits = {}
  for split in ("train", "test"):
    try:
      ds, info = tfds.load(TFDS_NAME, split=split, data_dir=data_dir, download=False,
                           as_supervised=True, with_info=True)
      mapping = tfds_label_map(info.features["label"].names)
      rate = int(getattr(info.features["audio"], "sample_rate", None) or audio.SAMPLE_RATE)
      splits[split] = _collect_tfds(ds, mapping, rate, collector,
                                    limit if split == "train" else None)
    except unavailable as e:
      first = str(e).splitlines()[0] if str(e) else ""
      raise SourceUnavailableError(
          f"tfds {TFDS_NAME} is not prepared under {shown}; nothing is downloaded "
          f"({type(e).__name__}: {first}). Prepare it where you have internet "
          f"({prepare_command(TFDS_NAME)}), copy that data_dir here and pass path=... (or "
          "set TFDS_DATA_DIR); or use backend='folder' with the unzipped "
          "mini_speech_commands or a corpus from `python -m apps.make_speech`.") from e
    if not len(splits[split]):
      raise SourceUnavailableError(
          f"tfds {TFDS_NAME} {split} split under {shown} holds none of the words "
          f"{' '.join(CLASS_NAMES)}.")
  return _finish(collector, splits)


def _collect_tfds(ds, mapping: np.ndarray, rate: int, collector: _Collector,
                  limit: Optional[int]) -> _Spectrograms:
  out = _Spectrograms()
  counts = np.zeros(len(CLASS_NAMES), np.int64)
  for i, (samples, label) in enumerate(ds.as_numpy_iterator()):
    c = int(mapping[int(label)]) if 0 <= int(label) < len(mapping) else -1
    if c < 0 or (limit is not None and counts[c] >= limit):
      continue
    x = np.asarray(samples)
    scale = 32768.0 if x.dtype == np.int16 else 1.0
    x = x.astype(np.float32) / scale
    name = f"tfds example {i}"
    if x.size == 0:
      collector.skipped.append((name, "no audio samples"))
      continue
    out.add(collector.waveform(x.reshape(len(x), -1), rate, name), c)
    counts[c] += 1
    if limit is not None and counts.min() >= limit:
      break
  return out
