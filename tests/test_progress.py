"""The condensation progress bar (issue 42): with a time budget it counts time, not an
iteration count the budget stops long before (`22/200000 ... 178:40:31` for 4 minutes)."""
import io
import time

import pytest

from tfcondense import engine
from tfcondense import progress as progress_lib


class _Slow:
  """A method of 200000 steps of about 10 ms each, no state."""

  total_steps = 200000

  def checkpoint_items(self):
    return {}

  def step(self, step):
    del step
    time.sleep(0.01)
    return {"loss": 1.0}

  def image_summaries(self):
    return {}


@pytest.fixture
def bars(monkeypatch):
  """The bars the engine asks for: (positional, keyword) arguments, and the bar."""
  made = []
  real = progress_lib.progress
  monkeypatch.delenv("TFCONDENSE_PROGRESS", raising=False)

  def spy(*args, **kwargs):
    bar = real(*args, **dict(kwargs, enabled=True, file=io.StringIO()))  # not a terminal
    made.append((args, kwargs, bar))
    return bar

  monkeypatch.setattr(progress_lib, "progress", spy)
  return made


def test_a_minute_budget_draws_a_time_bar(bars):
  r = engine.run(_Slow(), engine.RunOptions(minutes=0.3 / 60, handle_signals=False))
  assert r.stopped == "budget" and 0 < r.steps < 200000
  ((args, kwargs, bar),) = bars
  assert args[0] == pytest.approx(0.3) and kwargs["unit"] == "s"  # of the budget
  assert "remaining" in kwargs["bar_format"] and "/200000" not in kwargs["bar_format"]
  assert bar.n == pytest.approx(min(r.seconds, 0.3))


def test_a_step_count_draws_a_step_bar(bars):
  engine.run(_Slow(), engine.RunOptions(max_steps=3, handle_signals=False))
  ((args, kwargs, bar),) = bars
  assert args[0] == 3 and kwargs["unit"] == "it" and bar.n == 3


@pytest.mark.parametrize("budget,spent,expected", [
    (240.0, 0.0, (240.0, 0.0, "s")),       # --minutes 4, a fresh run
    (240.0, 30.0, (240.0, 30.0, "s")),     # resumed after 30 s of work
    (240.0, 300.0, (240.0, 240.0, "s")),   # a budget already spent
    (None, 0.0, (200000, 22, "it")),       # no budget: the steps
])
def test_loop_bar_settings(budget, spent, expected):
  spec = progress_lib.loop_bar(200000, 22, budget_seconds=budget, spent_seconds=spent)
  assert (spec.total, spec.initial, spec.unit) == expected
  assert spec.advance(2.5) == (2.5 if budget else 1)
