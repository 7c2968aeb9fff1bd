"""A synthetic spoken-commands corpus from the espeak-ng speech synthesiser.

Mini Speech Commands (the 8-word subset of Warden, 2018, "Speech Commands: A Dataset for
Limited-Vocabulary Speech Recognition", used by IDC, Kim et al. 2022) cannot be
downloaded on an offline machine, so this module writes a stand-in with the same layout:
``<out>/<word>/*.wav``, 16 kHz mono 16-bit PCM, 1 s per clip, for the words
``down go left no right stop up yes``. It is synthetic speech, useful for trying the
pipeline end to end and for tests, not a substitute for recordings of people.

Every clip draws, from its own random stream seeded by (seed, word, clip index):

* a voice: one of the English accents of espeak-ng (``en-us``, ``en-gb``,
  ``en-gb-scotland``, ...) with one of its voice variants (``+m1`` .. ``+m8``,
  ``+f1`` .. ``+f5``, ``+klatt``, ``+whisper``, named variants) or none;
* the speaking rate (``-s``, 120-220 words per minute) and pitch (``-p``, 20-80);
* the final punctuation ("yes", "yes.", "yes?", "yes!"), which changes the intonation;
* the loudness: the peak level, -20 to -1 dBFS. (espeak-ng's ``-a`` only scales the
  samples, with clipping at high values, so the level is set digitally instead; ``-g``
  only lengthens pauses between words and is useless for one word.)
* a random start inside the 1 s clip (the word's leading and trailing silence trimmed);
* white or pink background noise at a signal-to-noise ratio of 5-40 dB.

espeak-ng writes 22050 Hz audio to stdout; it is resampled to 16 kHz with
`tfcondense.speech.audio.resample`. The result is reproducible: the same seed, word
list and clip count give byte-identical files on the same espeak-ng installation (its
version and its voice files decide the sound; the version is recorded in README.txt).
Clips are rendered by a small thread pool (espeak-ng runs as a subprocess and numpy
releases the GIL); the order of completion does not affect any file.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import shutil
import subprocess
import time
from typing import Optional, Sequence

import numpy as np

from tfcondense.errors import InvalidConfigError, SourceUnavailableError
from tfcondense.progress import progress
from tfcondense.speech import audio

WORDS = ("down", "go", "left", "no", "right", "stop", "up", "yes")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# Human-sounding variants shipped with espeak-ng 1.51 (voices/!v/); "" is the plain voice.
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4",
            "f5", "klatt", "klatt2", "klatt3", "klatt4", "adam", "Alex", "Andy", "Annie",
            "aunty", "belinda", "benjamin", "david", "Denis", "ed", "edward", "grandma",
            "grandpa", "Hugo", "iven", "iven2", "john", "Lee", "linda", "max", "michel",
            "Mike", "norbert", "paul", "quincy", "rob", "robert", "shelby", "steph",
            "steph2", "travis", "victor", "zac", "whisper", "whisperf")
SPEED = (120, 220)
PITCH = (20, 80)
PUNCTUATION = ("", ".", "?", "!")
LEVEL_DB = (-20.0, -1.0)
SNR_DB = (5.0, 40.0)
NOISES = ("white", "pink")
TRIM_DB = -40.0  # leading/trailing samples quieter than this (relative to the peak) go
FADE = 160  # samples (10 ms) of fade-out when a long utterance is cut at 1 s
ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT_S = 30


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """Everything that decides one clip (a manifest row)."""

  word: str
  index: int
  voice: str
  speed: int
  pitch: int
  text: str
  level_db: float
  offset: float  # where the word starts, as a fraction of the free time in the clip
  noise: str
  snr_db: float
  noise_seed: int

  @property
  def filename(self) -> str:
    return f"synth_{self.index:05d}.wav"

  def command(self, espeak: str = ESPEAK) -> list[str]:
    return [espeak, "-v", self.voice, "-s", str(self.speed), "-p", str(self.pitch),
            "--stdout", self.text]


@dataclasses.dataclass(frozen=True)
class CorpusSummary:
  """What `generate_corpus` wrote."""

  out: str
  words: tuple
  clips_per_word: int
  seed: int
  seconds: float
  espeak_version: str

  @property
  def num_clips(self) -> int:
    return len(self.words) * self.clips_per_word


def find_espeak() -> str:
  """The espeak-ng executable, or a SourceUnavailableError saying how to install it."""
  path = shutil.which(ESPEAK)
  if path is None:
    raise SourceUnavailableError(
        "espeak-ng is not installed (needed to synthesise the speech corpus): "
        "`apt-get install espeak-ng`, or download Mini Speech Commands instead "
        "(http://storage.googleapis.com/download.tensorflow.org/data/"
        "mini_speech_commands.zip) and pass its folder as path=... .")
  return path


def espeak_version(espeak: Optional[str] = None) -> str:
  """e.g. "eSpeak NG text-to-speech: 1.51"."""
  out = subprocess.run([espeak or find_espeak(), "--version"], capture_output=True,
                       text=True, timeout=ESPEAK_TIMEOUT_S, check=False)
  return re.sub(r"\s+Data at:.*", "", out.stdout.strip())


def voices() -> tuple[str, ...]:
  """The accent+variant voice names a clip is drawn from, in a fixed order."""
  return tuple(a + ("+" + v if v else "") for a in ACCENTS for v in VARIANTS)


def clip_spec(seed: int, word: str, word_index: int, clip_index: int) -> ClipSpec:
  """The random choices of one clip, from its own stream (seed, word, clip)."""
  rng = np.random.default_rng([int(seed), int(word_index), int(clip_index)])
  names = voices()
  return ClipSpec(
      word=word, index=int(clip_index),
      voice=names[int(rng.integers(len(names)))],
      speed=int(rng.integers(SPEED[0], SPEED[1] + 1)),
      pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
      text=word + PUNCTUATION[int(rng.integers(len(PUNCTUATION)))],
      level_db=round(float(rng.uniform(*LEVEL_DB)), 3),
      offset=round(float(rng.uniform()), 6),
      noise=NOISES[int(rng.integers(len(NOISES)))],
      snr_db=round(float(rng.uniform(*SNR_DB)), 3),
      noise_seed=int(rng.integers(2**31)))


def speak(spec: ClipSpec, espeak: Optional[str] = None) -> np.ndarray:
  """espeak-ng's utterance of `spec`, resampled to 16 kHz: float32 [samples]."""
  cmd = spec.command(espeak or find_espeak())
  try:
    out = subprocess.run(cmd, capture_output=True, timeout=ESPEAK_TIMEOUT_S, check=False)
  except subprocess.TimeoutExpired as e:
    raise SourceUnavailableError(f"espeak-ng timed out: {' '.join(cmd)}") from e
  if out.returncode != 0 or not out.stdout:
    raise SourceUnavailableError(
        f"espeak-ng failed (exit {out.returncode}): {' '.join(cmd)}: "
        f"{out.stderr.decode(errors='replace').strip()[:300]}")
  try:
    wav = audio.decode_wav_bytes(out.stdout)
  except ValueError as e:
    raise SourceUnavailableError(f"espeak-ng wrote no valid WAV ({e}): {' '.join(cmd)}") \
        from e
  mono, _ = audio.to_mono(wav.samples)
  return audio.resample(mono, wav.rate, audio.SAMPLE_RATE)


def render(spec: ClipSpec, speech: np.ndarray) -> np.ndarray:
  """Places an utterance in a 1 s clip with level, shift and noise: float32 [16000]."""
  x = trim(np.asarray(speech, np.float64))
  n = audio.CLIP_SAMPLES
  if len(x) > n:
    x = x[:n].copy()
    x[-FADE:] *= np.linspace(1.0, 0.0, FADE)
  peak = float(np.max(np.abs(x))) if len(x) else 0.0
  if peak <= 0:
    raise SourceUnavailableError(f"espeak-ng produced silence for {spec.text!r} "
                                 f"with voice {spec.voice}")
  x *= 10.0 ** (spec.level_db / 20.0) / peak
  start = int(round(spec.offset * (n - len(x))))
  clip = np.zeros(n)
  clip[start:start + len(x)] = x
  speech_rms = float(np.sqrt(np.mean(x * x)))
  noise = make_noise(spec.noise, n, np.random.default_rng(spec.noise_seed))
  clip += noise * speech_rms * 10.0 ** (-spec.snr_db / 20.0)
  return np.clip(clip, -1.0, 1.0).astype(np.float32)


def trim(x: np.ndarray, threshold_db: float = TRIM_DB) -> np.ndarray:
  """Drops leading and trailing samples below `threshold_db` relative to the peak."""
  if not len(x):
    return x
  loud = np.flatnonzero(np.abs(x) >= np.max(np.abs(x)) * 10.0 ** (threshold_db / 20.0))
  return x[loud[0]:loud[-1] + 1] if len(loud) else x[:0]


def make_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
  """Unit-RMS white or pink (1/f power) noise of n samples."""
  white = rng.standard_normal(n)
  if kind == "white":
    x = white
  elif kind == "pink":
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    spectrum /= np.sqrt(f)
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, n)
  else:
    raise InvalidConfigError(f"unknown noise {kind!r}; expected one of {', '.join(NOISES)}")
  return x / max(float(np.sqrt(np.mean(x * x))), 1e-12)


def synthesize_clip(seed: int, word: str, word_index: int, clip_index: int,
                    espeak: Optional[str] = None) -> tuple[ClipSpec, np.ndarray]:
  """(spec, float32 [16000] waveform) of one clip."""
  spec = clip_spec(seed, word, word_index, clip_index)
  return spec, render(spec, speak(spec, espeak))


def generate_corpus(out: str, clips_per_word: int = 300, seed: int = 0,
                    words: Sequence[str] = WORDS, workers: Optional[int] = None,
                    overwrite: bool = False, show_progress: bool = True) -> CorpusSummary:
  """Writes a synthetic spoken-commands corpus in the Mini Speech Commands layout.

  Args:
    out: the corpus root; ``<out>/<word>/synth_00000.wav`` ... are written, with a
      README.txt (saying the speech is synthetic) and manifest.csv (every clip's
      voice, rate, pitch, text, level, position and noise) at the root.
    clips_per_word: clips per word.
    seed: the corpus seed; the same seed gives byte-identical files.
    words: the words (default: the 8 of Mini Speech Commands). Word i of this list
      seeds its clips with i, so keep the order to reproduce a corpus.
    workers: concurrent clips (default: min(4, CPU count)). Does not change the output.
    overwrite: replace the WAV files of an existing corpus in `out` (otherwise a word
      folder that already holds WAV files is an error).
    show_progress: show a progress bar.

  Returns:
    The CorpusSummary.

  Raises:
    SourceUnavailableError: espeak-ng is missing or fails.
    InvalidConfigError: bad arguments, or `out` already holds a corpus.
  """
  if isinstance(clips_per_word, bool) or not isinstance(clips_per_word, (int, np.integer)) \
      or clips_per_word < 1:
    raise InvalidConfigError(f"clips_per_word must be a positive integer, got {clips_per_word!r}")
  words = tuple(str(w).strip() for w in words)
  bad = [w for w in words if not re.fullmatch(r"[A-Za-z][A-Za-z' -]*", w)]
  if not words or bad or len(set(words)) != len(words):
    raise InvalidConfigError(
        f"words must be distinct non-empty words of letters, got {list(words)!r}")
  workers = workers or min(4, os.cpu_count() or 1)
  if workers < 1:
    raise InvalidConfigError(f"workers must be at least 1, got {workers}")
  espeak = find_espeak()
  version = espeak_version(espeak)
  out = os.path.abspath(os.path.expanduser(os.fspath(out)))
  for word in words:
    folder = os.path.join(out, word)
    existing = [f for f in os.listdir(folder) if f.lower().endswith(".wav")] \
        if os.path.isdir(folder) else []
    if existing and not overwrite:
      raise InvalidConfigError(
          f"{folder} already holds {len(existing)} WAV files; choose another --out or "
          "pass overwrite=True (--overwrite) to replace the corpus.")
    for f in existing:
      os.remove(os.path.join(folder, f))
    os.makedirs(folder, exist_ok=True)

  jobs = [(w, wi, ci) for wi, w in enumerate(words) for ci in range(clips_per_word)]
  specs = {}
  start = time.perf_counter()

  def job(word, word_index, clip_index):
    spec, clip = synthesize_clip(seed, word, word_index, clip_index, espeak)
    audio.write_wav(os.path.join(out, word, spec.filename), clip)
    return spec

  with progress(len(jobs), "synthesising clips", enabled=show_progress,
                unit="clip") as bar, \
      concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    futures = [pool.submit(job, *j) for j in jobs]
    try:
      for fut in concurrent.futures.as_completed(futures):
        spec = fut.result()
        specs[(spec.word, spec.index)] = spec
        bar.update(1)
    except BaseException:
      for fut in futures:
        fut.cancel()
      raise
  seconds = time.perf_counter() - start
  _write_manifest(out, [specs[(w, ci)] for w, _, ci in jobs])
  summary = CorpusSummary(out=out, words=words, clips_per_word=int(clips_per_word),
                          seed=int(seed), seconds=seconds, espeak_version=version)
  _write_readme(summary)
  return summary


def _write_manifest(out: str, specs: Sequence[ClipSpec]) -> None:
  fields = [f.name for f in dataclasses.fields(ClipSpec)]
  with open(os.path.join(out, "manifest.csv"), "w", encoding="utf-8", newline="\n") as f:
    f.write("file," + ",".join(fields) + "\n")
    for s in specs:
      row = [f"{s.word}/{s.filename}"] + [str(getattr(s, k)) for k in fields]
      f.write(",".join(row) + "\n")


def _write_readme(summary: CorpusSummary) -> None:
  text = f"""SYNTHETIC SPEECH: every clip in this folder was generated by a computer
(the espeak-ng speech synthesiser), not recorded from a person.

Made by tfcondense (tfcondense.speech.synth, `python -m apps.make_speech`) as an
offline stand-in for Mini Speech Commands (Warden 2018), in the same layout:
  <word>/synth_NNNNN.wav   16 kHz, mono, 16-bit PCM, 1 s each
Words: {' '.join(summary.words)}
Clips per word: {summary.clips_per_word}
Seed: {summary.seed}
Synthesiser: {summary.espeak_version}

Each clip draws an English accent and voice variant of espeak-ng, a speaking rate
({SPEED[0]}-{SPEED[1]} wpm), a pitch ({PITCH[0]}-{PITCH[1]}), a final punctuation mark
(intonation), a peak level ({LEVEL_DB[0]:g} to {LEVEL_DB[1]:g} dBFS), a random start within
the second and white or pink noise at {SNR_DB[0]:g}-{SNR_DB[1]:g} dB SNR; manifest.csv
lists the choices of every clip. The same seed and espeak-ng installation reproduce
the files byte for byte.

Accuracy on this corpus says little about real speech: use the recorded Mini Speech
Commands for any result you report.
"""
  with open(os.path.join(summary.out, "README.txt"), "w", encoding="utf-8",
            newline="\n") as f:
    f.write(text)
