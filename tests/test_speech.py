"""Speech: the spectrogram pipeline, the espeak-ng corpus, the speech_commands source,
Griffin-Lim and the two apps (all tiny; espeak-ng is called about 90 times)."""
import os
import shutil
import struct
import time
import wave

import numpy as np
import pytest

from tests import apprun
from tfcondense import data
from tfcondense.artifact import save_artifact
from tfcondense.data import speech
from tfcondense.errors import InvalidConfigError, SourceUnavailableError
from tfcondense.speech import audio
from tfcondense.speech import synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not installed")
T = np.arange(audio.CLIP_SAMPLES) / audio.SAMPLE_RATE


def tone(hz, amp=0.5, rate=audio.SAMPLE_RATE, seconds=1.0):
  t = np.arange(int(rate * seconds)) / rate
  return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def reference_log_spectrogram(x):
  """IDC's pipeline in plain numpy, written from its description (librosa < 0.10
  centred STFT, pad time (1, 2), 128 -> 64 bilinear = 2x2 means, log(x + 1e-3))."""
  x = np.asarray(x, np.float64)
  n_fft, hop = 255, 128
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
  padded = np.pad(x, n_fft // 2, mode="reflect")
  frames = np.stack([padded[i:i + n_fft] * window
                     for i in range(0, len(padded) - n_fft + 1, hop)])
  mag = np.abs(np.fft.rfft(frames, n=n_fft, axis=1))  # [125 time, 128 freq]
  mag = np.pad(mag, ((1, 2), (0, 0)))
  return np.log(mag.reshape(64, 2, 64, 2).mean(axis=(1, 3)) + 1e-3)


# ------------------------------------------------------------------ audio pipeline
def test_spectrogram_matches_the_reference_pipeline_and_bounds():
  rng = np.random.default_rng(0)
  x = np.clip(rng.normal(0, 0.3, audio.CLIP_SAMPLES), -1, 1).astype(np.float32)
  s = audio.spectrogram(x)
  assert s.shape == (64, 64) and s.dtype == np.float32
  np.testing.assert_allclose(s, reference_log_spectrogram(x), atol=2e-4)
  assert audio.magnitude(x[None]).shape == (1, 125, 128)
  # Batched == single; short clips are zero-padded, long ones cut.
  batch = audio.spectrograms([x, x[:8000], np.concatenate([x, x])])
  assert batch.shape == (3, 64, 64)
  np.testing.assert_allclose(batch[0], s, atol=1e-6)
  np.testing.assert_allclose(batch[2], s, atol=1e-6)
  np.testing.assert_allclose(batch[1], audio.spectrogram(np.pad(x[:8000], (0, 8000))),
                             atol=1e-6)
  # The fixed bounds hold for the loudest possible input and for silence.
  # (Full-scale DC reaches |STFT| = 127.5 in bin 0; the 2x2 mean with bin 1, 63.75,
  # gives 95.6, so the bound is within 0.3 of the largest possible value.)
  loud = np.ones(audio.CLIP_SAMPLES, np.float32)
  extremes = audio.spectrograms([loud, np.zeros(audio.CLIP_SAMPLES)])
  assert audio.LOG_HI - 0.3 < extremes.max() <= audio.LOG_HI + 1e-5
  np.testing.assert_allclose(extremes[1], audio.LOG_LO, atol=1e-6)
  u = audio.to_unit(s)
  assert 0.0 <= u.min() and u.max() <= 1.0
  np.testing.assert_allclose(audio.from_unit(u), s, atol=1e-5)


@pytest.mark.parametrize("hz,cols", [(1000, (7, 8)), (4000, (31, 32))])
def test_a_pure_tone_is_a_bright_band_at_its_frequency(hz, cols):
  # bin = hz / 16000 * 255 in the 128-bin STFT; the 2x resize halves it.
  s = audio.spectrogram(tone(hz))
  profile = s[1:-2].mean(axis=0)  # average over time, away from the padding rows
  assert int(np.argmax(profile)) in cols
  assert profile[cols[0]] - np.median(profile) > 5.0  # a band far above the rest
  assert np.ptp(s[2:-3, int(np.argmax(profile))]) < 0.1  # steady over time


def test_resample_is_band_limited_and_accurate():
  y = audio.resample(tone(440, rate=22050), 22050, 16000)
  assert y.shape == (16000,) and y.dtype == np.float32
  np.testing.assert_allclose(y[200:-200], tone(440)[200:-200], atol=1e-3)
  up = audio.resample(tone(3000, rate=8000), 8000, 16000)
  np.testing.assert_allclose(up[200:-200], tone(3000)[200:-200], atol=1e-3)
  alias = audio.resample(tone(10000, rate=22050), 22050, 16000)  # above 8 kHz: removed
  assert np.abs(alias[200:-200]).max() < 0.01
  stereo = audio.resample(np.stack([tone(440, rate=22050)] * 2, 1), 22050, 16000)
  assert stereo.shape == (16000, 2)


def test_wav_round_trip_and_other_encodings(tmp_path):
  x = tone(500, 0.8)
  audio.write_wav(str(tmp_path / "a.wav"), x)
  w = audio.read_wav(str(tmp_path / "a.wav"))
  assert w.rate == 16000 and w.samples.shape == (16000, 1)
  np.testing.assert_allclose(w.samples[:, 0], x, atol=1e-4)
  # 32-bit float, stereo, 8 kHz, with an extra chunk before the data.
  pcm = np.stack([x, -x], 1).astype("<f4").tobytes()
  fmt = struct.pack("<HHIIHH", 3, 2, 8000, 8000 * 8, 8, 32)
  blob = (b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack("<I", 16) +
          fmt + b"LIST" + struct.pack("<I", 3) + b"abc\0" + b"data" +
          struct.pack("<I", 0x7FFFF000) + pcm)
  w = audio.decode_wav_bytes(blob)
  assert w.rate == 8000 and w.samples.shape == (16000, 2)
  np.testing.assert_allclose(w.samples[:, 1], -x, atol=1e-7)
  with pytest.raises(ValueError, match="not a RIFF"):
    audio.decode_wav_bytes(b"hello world, not audio")
  with pytest.raises(SourceUnavailableError, match="empty file"):
    (tmp_path / "z.wav").write_bytes(b"")
    audio.read_wav(str(tmp_path / "z.wav"))


def test_griffin_lim_inverts_a_spectrogram():
  chirp = (0.5 * np.sin(2 * np.pi * (300 + 1500 * T) * T) *
           np.exp(-((T - 0.5) / 0.2) ** 2)).astype(np.float32)
  log = audio.spectrogram(chirp)
  unit = audio.to_unit(log)
  y = audio.griffin_lim(unit, iterations=16)
  assert y.shape == (16000,) and y.dtype == np.float32 and np.all(np.isfinite(y))
  assert audio.spectral_correlation(audio.spectrogram(y), log) > 0.9
  lin = lambda s: np.exp(s) - audio.EPS  # noqa: E731
  assert audio.spectral_correlation(lin(audio.spectrogram(y)), lin(log)) > 0.8
  # The iterations make the magnitudes consistent (closer than a random phase).
  err = lambda w: np.abs(lin(audio.spectrogram(w)) - lin(log)).mean()  # noqa: E731
  assert err(y) < err(audio.griffin_lim(unit, iterations=0))
  # A batch, and the standardised scale with its mean/std, give the same audio.
  mean, std = 0.4, 0.1
  both = audio.griffin_lim(np.stack([unit, unit * 0.5])[..., None], iterations=16)
  assert both.shape == (2, 16000)
  np.testing.assert_allclose(both[0], y, atol=1e-4)
  z = audio.griffin_lim((unit - mean) / std, scale="standardised", mean=mean, std=std,
                        iterations=16)
  np.testing.assert_allclose(z, y, atol=1e-3)
  with pytest.raises(InvalidConfigError, match="mean and std"):
    audio.griffin_lim(unit, scale="standardised")
  with pytest.raises(InvalidConfigError, match="64, 64"):
    audio.griffin_lim(np.zeros((32, 32)))


# --------------------------------------------------------------------- synthesis
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """A synthetic corpus of 4 clips per word (index 0 -> test, 1..3 -> train)."""
  if not HAS_ESPEAK:
    pytest.skip("espeak-ng not installed")
  root = str(tmp_path_factory.mktemp("speech") / "corpus")
  synth.generate_corpus(root, clips_per_word=4, seed=0, show_progress=False)
  return root


def _tree_bytes(root):
  out = {}
  for dirpath, _, files in os.walk(root):
    for f in files:
      p = os.path.join(dirpath, f)
      with open(p, "rb") as fh:
        out[os.path.relpath(p, root)] = fh.read()
  return out


@needs_espeak
def test_generator_is_deterministic_and_seeded(tmp_path, corpus):
  a = synth.generate_corpus(str(tmp_path / "a"), clips_per_word=2, seed=0,
                            show_progress=False, workers=2)
  synth.generate_corpus(str(tmp_path / "b"), clips_per_word=2, seed=0,
                        show_progress=False, workers=1)
  synth.generate_corpus(str(tmp_path / "c"), clips_per_word=2, seed=1,
                        show_progress=False)
  ta, tb, tc = (_tree_bytes(tmp_path / d) for d in "abc")
  assert a.num_clips == 16 and len([k for k in ta if k.endswith(".wav")]) == 16
  assert ta == tb  # byte-identical, whatever the number of workers
  wavs = [k for k in ta if k.endswith(".wav")]
  assert all(ta[k] != tc[k] for k in wavs)  # another seed: other clips
  # The first clips of a larger corpus are the same clips.
  assert ta["yes/synth_00001.wav"] == _tree_bytes(corpus)["yes/synth_00001.wav"]
  readme = ta["README.txt"].decode()
  assert readme.startswith("SYNTHETIC SPEECH") and "espeak-ng" in readme
  with wave.open(str(tmp_path / "a" / "go" / "synth_00000.wav")) as w:
    assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == \
        (16000, 1, 2, 16000)
  x = audio.read_wav(str(tmp_path / "a" / "go" / "synth_00000.wav")).samples[:, 0]
  assert 0.05 < np.abs(x).max() <= 1.0  # a word at a random level, not silence
  with pytest.raises(InvalidConfigError, match="overwrite"):
    synth.generate_corpus(str(tmp_path / "a"), clips_per_word=1, show_progress=False)


def test_clip_specs_vary_and_are_reproducible():
  specs = [synth.clip_spec(0, "yes", 7, i) for i in range(40)]
  assert specs == [synth.clip_spec(0, "yes", 7, i) for i in range(40)]
  assert len({s.voice for s in specs}) > 20 and len({s.noise for s in specs}) == 2
  assert len({s.speed for s in specs}) > 20 and len({s.text for s in specs}) == 4
  assert all(synth.SPEED[0] <= s.speed <= synth.SPEED[1] for s in specs)


# ------------------------------------------------------------------------ source
def test_split_rule():
  assert [i for i in range(17) if speech.split_is_test(i)] == [0, 8, 16]


@needs_espeak
def test_load_synthetic_corpus(corpus, monkeypatch):
  s = data.load_source("speech_commands", path=corpus, cache=False)
  assert s.name == "speech_commands" and s.class_names == speech.CLASS_NAMES
  assert s.num_classes == 8 and s.image_shape == (64, 64, 1)
  assert s.train_images.shape == (24, 64, 64, 1) and s.test_images.shape == (8, 64, 64, 1)
  assert s.train_images.dtype == np.float32 and s.train_labels.dtype == np.int32
  assert list(s.class_counts()) == [3] * 8 and list(s.test_labels) == list(range(8))
  assert 0.0 <= s.train_images.min() and s.train_images.max() <= 1.0
  assert 0.0 <= s.test_images.min() and s.test_images.max() <= 1.0
  report = speech.last_load_report()
  assert report.loaded == 32 and not report.skipped and not report.resampled
  # Standardising with SourceData's scalar mean/std is the reference's standardisation
  # of the log spectrograms with their train mean/std.
  waves = {w: [audio.read_wav(os.path.join(corpus, w, f"synth_{i:05d}.wav")).samples[:, 0]
               for i in range(4)] for w in speech.CLASS_NAMES}
  log_train = audio.spectrograms([waves[w][i] for w in speech.CLASS_NAMES
                                  for i in (1, 2, 3)]).astype(np.float64)
  log_test = audio.spectrograms([waves[w][0] for w in speech.CLASS_NAMES])
  mu, sigma = log_train.mean(), log_train.std()
  ours = (s.train_images[..., 0] - s.mean[0]) / s.std[0]
  np.testing.assert_allclose(ours, (log_train - mu) / sigma, atol=2e-5)
  ours_test = (s.test_images[..., 0] - s.mean[0]) / s.std[0]
  np.testing.assert_allclose(ours_test, (log_test - mu) / sigma, atol=2e-5)
  # The path can come from the environment, and limit_per_class keeps the first clips.
  monkeypatch.setenv(speech.ENV_VAR, corpus)
  lim = data.load_source("speech_commands", limit_per_class=1, cache=False)
  assert list(lim.class_counts()) == [1] * 8 and len(lim.test_labels) == 8
  np.testing.assert_array_equal(lim.train_images[0], s.train_images[0])


def _write_pcm(path, x, rate, channels=1):
  pcm = np.clip(np.round(np.asarray(x) * 32767), -32768, 32767).astype("<i2")
  with wave.open(str(path), "wb") as w:
    w.setnchannels(channels)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(pcm.tobytes())


@needs_espeak
def test_bad_files_are_skipped_or_fixed_and_reported(tmp_path, corpus):
  root = tmp_path / "c"
  shutil.copytree(corpus, root)
  yes = root / "yes"
  (yes / "a_corrupt.wav").write_bytes(np.random.default_rng(0).bytes(500))
  (yes / "a_zero_bytes.wav").write_bytes(b"")
  _write_pcm(yes / "b_empty.wav", [], 16000)
  _write_pcm(yes / "c_8khz.wav", tone(1000, rate=8000), 8000)
  _write_pcm(yes / "d_stereo.wav", np.stack([tone(2000), tone(2000)], 1).ravel(), 16000,
             channels=2)
  # Sorted: a_corrupt (index 0, test), a_zero_bytes, b_empty, c_8khz, d_stereo,
  # synth_00000 .. synth_00002 (train), synth_00003 (index 8, test).
  with pytest.warns(UserWarning) as record:
    s = data.load_source("speech_commands", path=str(root), cache=False)
  messages = " | ".join(str(r.message) for r in record)
  assert "skipped 3 unusable" in messages
  for name in ("a_corrupt.wav", "a_zero_bytes.wav", "b_empty.wav", "c_8khz.wav (8000 Hz)",
               "d_stereo.wav"):
    assert name in messages, name
  report = speech.last_load_report()
  assert len(report.skipped) == 3 and report.loaded == 34
  assert [os.path.basename(p) for p, _ in report.resampled] == ["c_8khz.wav"]
  assert [os.path.basename(p) for p in report.downmixed] == ["d_stereo.wav"]
  assert "skipped" in report.summary()
  # No zero-filled stand-ins: "yes" gained exactly the two usable files, and the split
  # indexes count the skipped files (synth_00000 moved to train, synth_00003 to test).
  yes_label = speech.CLASS_NAMES.index("yes")
  assert s.class_counts()[yes_label] == 5 and list(s.test_labels).count(yes_label) == 1
  rows = s.images_of_class(yes_label)[..., 0]
  resampled_tone = audio.to_unit(audio.spectrogram(tone(1000)))
  assert max(audio.spectral_correlation(r, resampled_tone) for r in rows) > 0.99


@needs_espeak
def test_missing_word_folder_or_location_raises(tmp_path, corpus, monkeypatch):
  root = tmp_path / "c"
  shutil.copytree(corpus, root)
  shutil.rmtree(root / "stop")
  with pytest.raises(SourceUnavailableError, match=f"missing word folder {root / 'stop'}"):
    data.load_source("speech_commands", path=str(root), cache=False)
  monkeypatch.delenv(speech.ENV_VAR, raising=False)
  with pytest.raises(SourceUnavailableError, match="apps.make_speech --out"):
    data.load_source("speech_commands", cache=False)
  with pytest.raises(SourceUnavailableError, match="does not exist"):
    data.load_source("speech_commands", path=str(tmp_path / "nope"), cache=False)
  with pytest.raises(InvalidConfigError, match="backend"):
    data.load_source("speech_commands", path=str(root), backend="kaggle", cache=False)
  # The official zip extracts to mini_speech_commands/, which is found under path.
  nested = tmp_path / "dl" / "mini_speech_commands"
  shutil.copytree(corpus, nested)
  s = data.load_source("speech_commands", path=str(tmp_path / "dl"), cache=False)
  assert s.train_images.shape[0] == 24


# -------------------------------------------------------------------------- tfds
def test_tfds_label_map():
  names = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
           "_silence_", "_unknown_"]
  np.testing.assert_array_equal(speech.tfds_label_map(names),
                                [0, 1, 2, 3, -1, -1, 4, 5, 6, 7, -1, -1])


def test_tfds_backend_offline_raises_fast(tmp_path):
  start = time.perf_counter()
  with pytest.raises(SourceUnavailableError,
                     match="speech_commands is not prepared under .*apps.make_speech"):
    data.load_source("speech_commands", backend="tfds", path=str(tmp_path), cache=False)
  assert time.perf_counter() - start < 30


def test_tfds_backend_with_mock_data(tmp_path):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=48, policy=tfds.testing.MockPolicy.USE_CODE):
    s = data.load_source("speech_commands", backend="tfds", path=str(tmp_path),
                         cache=False)
  assert s.image_shape == (64, 64, 1) and s.num_classes == 8
  assert 0 < len(s.train_labels) < 48 and 0 < len(s.test_labels) < 48  # others dropped
  assert s.train_labels.min() >= 0 and s.train_labels.max() < 8
  assert 0.0 <= s.train_images.min() and s.train_images.max() <= 1.0
  assert speech.last_load_report().backend == "tfds"


# -------------------------------------------------------------------------- apps
def run_app(*args, timeout=120):
  env = dict(os.environ, TFCONDENSE_PROGRESS="0")
  return apprun.run_module(*args, cwd=ROOT, env=env, timeout=timeout)


@needs_espeak
def test_make_speech_app(tmp_path):
  out = run_app("apps.make_speech", "--out", str(tmp_path / "s"), "--clips_per_word", "1",
                "--words", "yes,no")
  assert out.returncode == 0, out.stderr
  assert "wrote 2 synthetic clips" in out.stdout
  assert sorted(os.listdir(tmp_path / "s")) == ["README.txt", "manifest.csv", "no", "yes"]
  again = run_app("apps.make_speech", "--out", str(tmp_path / "s"), "--clips_per_word", "1",
                  "--words", "yes,no")
  assert again.returncode == 2 and "--overwrite" in again.stderr
  assert "Traceback" not in again.stderr


@pytest.mark.heavy
@needs_espeak
def test_listen_app_writes_wavs_of_formed_spectrograms(tmp_path, corpus):
  s = data.load_source("speech_commands", path=corpus, cache=False)
  keep = np.concatenate([s.class_indices(c)[:2] for c in range(8)])
  save_artifact(str(tmp_path / "art"), s.train_images[keep], s.train_labels[keep],
                {"source": "speech_commands", "method": "random", "ipc": 2, "factor": 2,
                 "formation": {"name": "time", "factor": 2, "axis": 1},
                 "class_names": list(s.class_names)})
  out = run_app("apps.listen", "--artifact", str(tmp_path / "art"), "--out",
                str(tmp_path / "wav"), "--per_class", "2", "--iterations", "8")
  assert out.returncode == 0, out.stderr
  files = sorted(os.listdir(tmp_path / "wav"))
  assert len(files) == 16 and "yes_1.wav" in files and "down_0.wav" in files
  w = audio.read_wav(str(tmp_path / "wav" / "yes_0.wav"))
  assert w.rate == 16000 and w.samples.shape == (16000, 1)
  assert 0.85 < np.abs(w.samples).max() < 0.95  # peak-normalised
  bad = run_app("apps.listen", "--artifact", str(tmp_path / "nope"), "--out",
                str(tmp_path / "wav2"))
  assert bad.returncode == 2 and "not a condensed-set artifact" in bad.stderr
