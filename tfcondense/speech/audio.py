"""Waveforms <-> the 64x64 log-magnitude spectrograms of IDC's speech experiments.

The forward pipeline reproduces the reference code of Kim et al. (ICML 2022, "Dataset
Condensation via Efficient Synthetic-Data Parameterization",
snu-mllab/Efficient-Dataset-Condensation, ``speech/speech.py`` and
``speech/transform_spec.py``), which computes ``librosa.stft`` (librosa < 0.10 defaults)
of the 1 s clip and then pads, resizes and takes the log. Written with ``tf.signal``:

1. waveform: float in [-1, 1], cut or zero-padded at the end to ``CLIP_SAMPLES`` = 16000
   (1 s at 16 kHz).
2. centred STFT as librosa's ``center=True``: the clip is reflect-padded by
   ``N_FFT // 2`` = 127 samples on each side, framed with ``frame_length`` = ``N_FFT`` =
   255 and ``frame_step`` = ``HOP`` = 128 under a periodic Hann window, FFT length 255:
   ``|STFT|`` is [time, freq] = [125, 128].
3. the time axis is zero-padded by (1, 2) frames: [128, 128].
4. bilinear resize (half-pixel centres, no antialiasing, as PyTorch's
   ``F.interpolate(mode="bilinear")``) to [64, 64]; for 128 -> 64 this is exactly the
   mean of 2x2 blocks.
5. ``log(x + 1e-3)``.

Layout: time on the first axis (rows, H) and frequency on the second (columns, W), so an
NHWC batch is [N, 64 (time), 64 (freq), 1] and the ``time`` formation with ``axis=1``
cuts along time. (The reference holds the transpose, [1, freq, time]; separable
bilinear resizing commutes with transposition, so the values are the same.)

The stored scale ("unit"): the log values lie in the fixed interval
[``LOG_LO``, ``LOG_HI``] = [log(1e-3), log(127.5 + 1e-3)] for any waveform in [-1, 1]
(a magnitude is >= 0 and at most the window's sum, 255 / 2), so ``to_unit`` maps them
linearly onto [0, 1] with bounds that depend on no data: every split, every corpus and
every condensed image uses the same map, and ``from_unit`` inverts it without the data.

Inversion: ``griffin_lim`` undoes the scale and the log, resizes back to [128, 128],
drops the padding frames and runs the fast Griffin-Lim algorithm (Griffin & Lim, 1984,
"Signal estimation from modified short-time Fourier transform"; Perraudin, Balazs &
Sondergaard, 2013, "A fast Griffin-Lim algorithm") with the same centred STFT.

Reading and writing WAV files, and resampling, use numpy and the standard library only;
TensorFlow is imported by the functions that need it.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import struct
import wave
from typing import Optional, Tuple

import numpy as np

from tfcondense.errors import BadFileError, InvalidConfigError, SourceUnavailableError, check_choice

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
N_FFT = 255
HOP = 128
FRAMES = 1 + (CLIP_SAMPLES + 2 * (N_FFT // 2) - N_FFT) // HOP  # 125 centred frames
BINS = N_FFT // 2 + 1  # 128
TIME_PAD = (1, 2)  # frames of zeros before / after: 125 -> 128
SIZE = 64
EPS = 1e-3
WINDOW_SUM = N_FFT / 2.0  # sum of the periodic Hann window of length 255
LOG_LO = math.log(EPS)
LOG_HI = math.log(WINDOW_SUM + EPS)
SCALES = ("unit", "standardised", "log")
KAISER_BETA = 8.6  # resampling filter window (about 90 dB stop-band attenuation)
RESAMPLE_ZERO_CROSSINGS = 16  # half-width of the resampling filter, in sinc lobes

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


# ------------------------------------------------------------------------- WAV files
@dataclasses.dataclass(frozen=True)
class Wav:
  """A decoded WAV file.

  Attributes:
    samples: float32 [frames, channels], PCM scaled to [-1, 1) (float WAVs as stored).
    rate: sample rate in Hz.
  """

  samples: np.ndarray
  rate: int


def read_wav(path: str) -> Wav:
  """Reads a RIFF/WAVE file: PCM 8/16/24/32-bit, IEEE float 32/64-bit, extensible.

  Streams whose header sizes are placeholders (``espeak-ng --stdout`` writes
  0x7ffff000) are read to the end of the data. A trailing partial frame is dropped.

  Args:
    path: the file.

  Returns:
    The Wav (possibly with zero frames: check ``len(wav.samples)``).

  Raises:
    SourceUnavailableError: the file cannot be read or is not a WAV file this reader
      understands; the message names the file and the problem.
  """
  try:
    with open(path, "rb") as f:
      blob = f.read()
  except OSError as e:
    raise SourceUnavailableError(f"{path}: cannot read ({e})") from e
  try:
    return decode_wav_bytes(blob)
  except ValueError as e:
    raise SourceUnavailableError(f"{path}: {e}") from e


def decode_wav_bytes(blob: bytes) -> Wav:
  """Decodes the bytes of a WAV file; raises ValueError saying what is wrong."""
  if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
    raise BadFileError("not a RIFF/WAVE file" if blob else "empty file (0 bytes)")
  fmt = None
  data = None
  pos = 12
  while pos + 8 <= len(blob):
    chunk_id = blob[pos:pos + 4]
    (size,) = struct.unpack("<I", blob[pos + 4:pos + 8])
    body = blob[pos + 8:pos + 8 + size]  # a placeholder size just reads to the end
    if chunk_id == b"fmt ":
      fmt = body
    elif chunk_id == b"data":
      data = body
      break
    pos += 8 + size + (size & 1)
  if fmt is None or len(fmt) < 16:
    raise BadFileError("no valid 'fmt ' chunk")
  if data is None:
    raise BadFileError("no 'data' chunk")
  tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", fmt[:16])
  if tag == _EXTENSIBLE:
    if len(fmt) < 26:
      raise BadFileError("truncated WAVE_FORMAT_EXTENSIBLE header")
    (tag,) = struct.unpack("<H", fmt[24:26])
  if channels < 1 or rate < 1:
    raise BadFileError(f"bad header: {channels} channels at {rate} Hz")
  width = bits // 8
  if bits % 8 or block != channels * width:
    raise BadFileError(f"unsupported sample layout ({bits} bits, block {block})")
  frames = len(data) // block
  raw = data[:frames * block]
  if tag == _PCM and width == 1:
    x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
  elif tag == _PCM and width == 2:
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
  elif tag == _PCM and width == 3:
    b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
  elif tag == _PCM and width == 4:
    x = (np.frombuffer(raw, "<i4") / float(1 << 31)).astype(np.float32)
  elif tag == _FLOAT and width in (4, 8):
    x = np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float32)
    if not np.all(np.isfinite(x)):
      raise BadFileError("non-finite float samples")
  else:
    raise BadFileError(f"unsupported WAV encoding (format tag {tag}, {bits} bits); "
                     "convert it to 16-bit PCM")
  return Wav(x.reshape(frames, channels), int(rate))


def write_wav(path: str, waveform, rate: int = SAMPLE_RATE) -> None:
  """Writes a mono 16-bit PCM WAV file (samples clipped to [-1, 1]).

  The bytes depend only on the samples and the rate, so equal waveforms give
  byte-identical files.
  """
  x = np.asarray(waveform, np.float64).reshape(-1)
  if not np.all(np.isfinite(x)):
    raise InvalidConfigError(f"waveform for {path} has NaN or infinite samples")
  pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  with wave.open(os.fspath(path), "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(int(rate))
    w.writeframes(pcm.tobytes())


# ------------------------------------------------------------------ sample handling
def resample(waveform, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
  """Band-limited polyphase resampling (numpy only).

  Output sample n sits at input time t = n * rate_in / rate_out; it is the sum of the
  input samples within `RESAMPLE_ZERO_CROSSINGS` lobes of a Kaiser-windowed sinc whose
  cut-off is the lower of the two Nyquist frequencies (downsampling is anti-aliased).
  The filter weights depend only on n mod (rate_out / gcd), so they are tabulated once
  per rate pair: the polyphase filter of ``scipy.signal.resample_poly``. Samples
  beyond the ends count as zeros.

  Args:
    waveform: float [samples] or [samples, channels].
    rate_in: its sample rate in Hz.
    rate_out: the wanted rate in Hz.

  Returns:
    float32 [ceil(samples * rate_out / rate_in)] (channels kept).
  """
  x = np.asarray(waveform, np.float64)
  rate_in, rate_out = int(rate_in), int(rate_out)
  if rate_in <= 0 or rate_out <= 0:
    raise InvalidConfigError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
  if rate_in == rate_out or len(x) == 0:
    return x.astype(np.float32)
  g = math.gcd(rate_in, rate_out)
  up, down = rate_out // g, rate_in // g
  table, offsets = _polyphase_table(up, down)
  n = np.arange(int(math.ceil(len(x) * up / down)))
  idx = ((n * down) // up)[:, None] + offsets[None, :]
  weights = table[n % up]
  valid = (idx >= 0) & (idx < len(x))
  taps = x[np.clip(idx, 0, len(x) - 1)]
  if x.ndim == 1:
    y = np.einsum("nk,nk->n", np.where(valid, weights, 0.0), taps)
  else:
    y = np.einsum("nk,nkc->nc", np.where(valid, weights, 0.0), taps)
  return y.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _polyphase_table(up: int, down: int) -> Tuple[np.ndarray, np.ndarray]:
  """Weights [up, taps] of each output phase, and the tap offsets [taps]."""
  cutoff = min(1.0, up / down)  # in units of the input Nyquist frequency
  half = int(math.ceil(RESAMPLE_ZERO_CROSSINGS / cutoff))
  offsets = np.arange(-half + 1, half + 1)
  frac = (np.arange(up) * down % up) / up  # t - floor(t) of each phase
  d = frac[:, None] - offsets[None, :]
  inside = np.clip(1.0 - (d / half) ** 2, 0.0, None)
  kaiser = np.i0(KAISER_BETA * np.sqrt(inside)) / np.i0(KAISER_BETA)
  table = np.where(np.abs(d) < half, cutoff * np.sinc(cutoff * d) * kaiser, 0.0)
  table.setflags(write=False)
  return table, offsets


def fix_length(waveform, length: int = CLIP_SAMPLES) -> np.ndarray:
  """Cuts the end off, or zero-pads it, to `length` samples (the reference's
  ``FixAudioLength``)."""
  x = np.asarray(waveform, np.float32).reshape(-1)
  if len(x) >= length:
    return x[:length]
  return np.pad(x, (0, length - len(x)))


# ----------------------------------------------------------------- spectrograms (TF)
def periodic_hann(frame_length, dtype=None):
  """The periodic Hann window 0.5 - 0.5 cos(2 pi n / N), n < N (scipy's
  ``get_window("hann", N)``, librosa's STFT window).

  ``tf.signal.hann_window(periodic=True)`` only makes even lengths periodic; for the
  odd N = 255 it returns the symmetric window (denominator N - 1), hence this one.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dtype = dtype or tf.float32
  n = tf.range(frame_length, dtype=tf.float64)
  w = 0.5 - 0.5 * tf.cos(2.0 * math.pi * n / tf.cast(frame_length, tf.float64))
  return tf.cast(w, dtype)


def _stft(waveforms):
  """Centred complex STFT of float [B, CLIP_SAMPLES] -> [B, FRAMES, BINS]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  pad = N_FFT // 2
  x = tf.pad(waveforms, [[0, 0], [pad, pad]], mode="REFLECT")
  return tf.signal.stft(x, frame_length=N_FFT, frame_step=HOP, fft_length=N_FFT,
                        window_fn=periodic_hann, pad_end=False)


def _istft(stfts):
  """Inverse of `_stft` (least-squares overlap-add): [B, FRAMES, BINS] -> [B, 16000]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  window = tf.signal.inverse_stft_window_fn(HOP, forward_window_fn=periodic_hann)
  x = tf.signal.inverse_stft(stfts, frame_length=N_FFT, frame_step=HOP, fft_length=N_FFT,
                             window_fn=window)
  pad = N_FFT // 2
  return x[:, pad:pad + CLIP_SAMPLES]


def magnitude(waveforms) -> np.ndarray:
  """|STFT| of 1 s clips: float [B, 16000] -> float32 [B, 125 (time), 128 (freq)]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = tf.convert_to_tensor(np.asarray(waveforms, np.float32))
  return tf.abs(_stft(x)).numpy()


def spectrograms(waveforms, batch: int = 256) -> np.ndarray:
  """The reference's log spectrograms of a batch of waveforms.

  Args:
    waveforms: float [B, samples] in [-1, 1] at 16 kHz (each cut or zero-padded to
      16000 samples), or a list of 1-D arrays of any lengths.
    batch: clips per TensorFlow call (bounds the peak memory).

  Returns:
    float32 [B, 64 (time), 64 (freq)], values in [LOG_LO, LOG_HI]: steps 1-5 of the
    module docstring, before the scalar standardisation.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  clips = np.stack([fix_length(w) for w in waveforms]) if len(waveforms) else \
      np.zeros((0, CLIP_SAMPLES), np.float32)
  out = np.empty((len(clips), SIZE, SIZE), np.float32)
  for i in range(0, len(clips), batch):
    mag = tf.abs(_stft(tf.constant(clips[i:i + batch])))  # [b, 125, 128]
    mag = tf.pad(mag, [[0, 0], list(TIME_PAD), [0, 0]])  # [b, 128, 128]
    mag = tf.image.resize(mag[..., None], (SIZE, SIZE), method="bilinear",
                          antialias=False)[..., 0]
    out[i:i + batch] = tf.math.log(mag + EPS).numpy()
  return out


def spectrogram(waveform) -> np.ndarray:
  """The reference's log spectrogram of one waveform: float32 [64 (time), 64 (freq)].

  See `spectrograms` (the batched version) and the module docstring.
  """
  return spectrograms([np.asarray(waveform, np.float32).reshape(-1)])[0]


def to_unit(log_spectrogram) -> np.ndarray:
  """Log spectrogram -> the stored [0, 1] scale: (x - LOG_LO) / (LOG_HI - LOG_LO)."""
  x = (np.asarray(log_spectrogram, np.float64) - LOG_LO) / (LOG_HI - LOG_LO)
  return np.clip(x, 0.0, 1.0).astype(np.float32)


def from_unit(unit) -> np.ndarray:
  """Inverse of `to_unit`: [0, 1] -> log spectrogram."""
  return (LOG_LO + np.asarray(unit, np.float64) * (LOG_HI - LOG_LO)).astype(np.float32)


def _to_magnitude(spec: np.ndarray, scale: str, mean, std) -> np.ndarray:
  """[B, 64, 64] on `scale` -> linear magnitudes [B, 125, 128] (padding frames dropped)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if scale == "standardised":
    if mean is None or std is None:
      raise InvalidConfigError(
          "griffin_lim(scale='standardised') needs the mean and std that standardised "
          "the spectrogram (SourceData.mean[0], SourceData.std[0]).")
    spec = spec * float(np.ravel(std)[0]) + float(np.ravel(mean)[0])
    scale = "unit"
  log = from_unit(spec) if scale == "unit" else spec.astype(np.float32)
  mag = np.maximum(np.exp(log.astype(np.float64)) - EPS, 0.0).astype(np.float32)
  full = FRAMES + sum(TIME_PAD)
  mag = tf.image.resize(mag[..., None], (full, BINS), method="bilinear",
                        antialias=False)[..., 0].numpy()
  return np.maximum(mag[:, TIME_PAD[0]:TIME_PAD[0] + FRAMES], 0.0)


def griffin_lim(spectrogram_or_batch, *, scale: str = "unit", mean: Optional[float] = None,
                std: Optional[float] = None, iterations: int = 64, momentum: float = 0.99,
                seed: int = 0) -> np.ndarray:
  """Inverts 64x64 spectrograms to 1 s of 16 kHz audio with fast Griffin-Lim.

  The 64x64 map only holds 2x2-block means of the magnitude, so the result is an
  approximation with the right spectral envelope over time; with the phase lost, it
  sounds like a rough, buzzy version of the word.

  Args:
    spectrogram_or_batch: [64, 64] or [B, 64, 64] (a trailing channel axis of 1 is
      accepted), time on the first spatial axis.
    scale: what the values are: "unit" (the stored [0, 1] scale of SourceData images
      and artifacts), "standardised" (the unit scale standardised with `mean`, `std`,
      i.e. what the network sees), or "log" (the reference log spectrogram).
    mean: for scale="standardised": the scalar mean (SourceData.mean[0]).
    std: for scale="standardised": the scalar std (SourceData.std[0]).
    iterations: Griffin-Lim iterations (0 returns the random-phase initialisation).
    momentum: the fast Griffin-Lim momentum (Perraudin et al. 2013); 0 is the classic
      algorithm.
    seed: seed of the random initial phase.

  Returns:
    float32 [16000] (or [B, 16000]) waveform at 16 kHz, not normalised.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  scale = check_choice("spectrogram scale", scale, SCALES)
  if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
      or iterations < 0:
    raise InvalidConfigError(f"iterations must be a non-negative integer, got {iterations!r}")
  spec = np.asarray(spectrogram_or_batch, np.float32)
  if spec.ndim >= 3 and spec.shape[-1] == 1 and spec.shape[-2] == SIZE:
    spec = spec[..., 0]
  single = spec.ndim == 2
  if single:
    spec = spec[None]
  if spec.ndim != 3 or spec.shape[1:] != (SIZE, SIZE):
    raise InvalidConfigError(
        f"griffin_lim expects [64, 64] or [B, 64, 64] spectrograms, got shape "
        f"{np.shape(spectrogram_or_batch)}")
  target = tf.constant(_to_magnitude(spec, scale, mean, std), tf.complex64)
  rng = np.random.default_rng(seed)
  phase = rng.uniform(0.0, 2.0 * np.pi, size=target.shape).astype(np.float32)
  angles = tf.complex(tf.cos(phase), tf.sin(phase))
  previous = tf.zeros_like(target)
  for _ in range(int(iterations)):
    rebuilt = _stft(_istft(target * angles))
    accelerated = rebuilt - (momentum / (1.0 + momentum)) * previous if momentum else rebuilt
    previous = rebuilt
    angles = accelerated / tf.cast(tf.maximum(tf.abs(accelerated), 1e-16), tf.complex64)
  out = _istft(target * angles).numpy().astype(np.float32)
  return out[0] if single else out


def spectral_correlation(a, b) -> float:
  """Pearson correlation of two spectrograms (any equal shapes), a quality check."""
  a = np.asarray(a, np.float64).ravel()
  b = np.asarray(b, np.float64).ravel()
  a, b = a - a.mean(), b - b.mean()
  denom = math.sqrt(float(a @ a) * float(b @ b))
  return float(a @ b / denom) if denom > 0 else 0.0


def to_mono(samples: np.ndarray) -> Tuple[np.ndarray, bool]:
  """Averages the channels of [frames, channels]; returns (mono, was_multichannel)."""
  samples = np.asarray(samples, np.float32)
  if samples.ndim == 1:
    return samples, False
  if samples.shape[1] == 1:
    return samples[:, 0], False
  return samples.mean(axis=1).astype(np.float32), True
