"""DD-Ranking's HLR, IOR, LRS and ARS against hand computations (accuracies as fractions)."""
import math

import pytest

from tfcondense.bench import ddranking as dd
from tfcondense.errors import InvalidConfigError


def test_the_four_scores_by_hand():
  assert dd.hlr(0.90, 0.80) == pytest.approx(0.10)
  assert dd.ior(0.85, 0.75) == pytest.approx(0.10)
  # alpha = 0.5 * 0.10 - 0.5 * 0.10 = 0: (1 - e^-1) / (e - e^-1) = 0.268941
  assert dd.lrs(0.10, 0.10) == pytest.approx(0.268941, abs=1e-6)
  # beta = 0.5 (0.85 - 0.75) + 0.5 (0.70 - 0.65) = 0.075 -> 0.302078
  assert dd.ars(0.85, 0.75, 0.70, 0.65) == pytest.approx(0.302078, abs=1e-6)
  # A set worse than random and far from the full data: alpha = 0.5 (-0.1) - 0.5 (0.3)
  assert dd.lrs(0.30, -0.10) == pytest.approx(0.191819, abs=1e-6)  # alpha = -0.2
  assert dd.normalise(1.0) == pytest.approx(1.0) and dd.normalise(-1.0) == pytest.approx(0.0)
  assert dd.lrs(0.10, 0.10, w=1.0) == pytest.approx(
      (math.exp(0.1) - math.exp(-1)) / (math.e - math.exp(-1)))


def test_scores_from_what_is_measured_and_percentages_refused():
  got = dd.scores(dd.Accuracies(full_hard=0.9, syn_hard=0.8, syn=0.85, rnd=0.75,
                                syn_noaug=0.70, rnd_noaug=0.65))
  assert got["hlr"] == pytest.approx(0.1) and got["ior"] == pytest.approx(0.1)
  assert got["lrs"] == pytest.approx(0.268941, abs=1e-6)
  assert got["ars"] == pytest.approx(0.302078, abs=1e-6)  # syn / rnd stand for the aug ones
  partial = dd.scores(dd.Accuracies(syn_hard=0.8, rnd=0.7))
  assert partial["ior"] == pytest.approx(0.1) and partial["hlr"] is None
  assert partial["lrs"] is None and partial["ars"] is None
  same = dd.scores_from_percent(full_hard=90.0, syn_hard=80.0, syn=85.0, rnd=75.0)
  assert same["lrs"] == pytest.approx(got["lrs"])
  with pytest.raises(InvalidConfigError,
                     match="got 90.0 .a percentage. pass 0.9, or use from_percent"):
    dd.hlr(90.0, 80.0)
  with pytest.raises(InvalidConfigError, match="w must lie in"):
    dd.lrs(0.1, 0.1, w=2)


def test_scores_are_read_from_an_evaluation_record():
  assert dd.read({"ddranking": {"hlr": 0.1, "lrs": 0.3, "ior": None}}) == \
      {"hlr": 0.1, "lrs": 0.3}
  assert dd.read({"acc_mean": 80.0, "ars": 0.4}) == {"ars": 0.4}
  assert dd.read(None) == {}


@pytest.mark.heavy
def test_the_report_leaderboard_shows_the_scores(tmp_path):
  from tests.test_bench import _fabricate_cells
  from tfcondense.bench import report
  _fabricate_cells(tmp_path)  # full 90; at IPC 10 dm 80 (dsa) / 74 (none), random 72 / 66
  md = open(report.build_report(str(tmp_path)).markdown).read()
  assert "| HLR | IOR | LRS | ARS |" in md
  # HLR 0.90 - 0.80; IOR 0.80 - 0.72; LRS norm(0.04 - 0.05); ARS norm(0.08 / 2 + 0.08 / 2)
  rows = [[c.strip().strip("*") for c in line.split("|")[1:-1]] for line in md.splitlines()
          if line.startswith("| ")]
  dm = next(r for r in rows if r[0] == "dm" and r[1].startswith("80.00"))
  assert dm[-4:] == ["0.100", "0.080", "0.265", "0.304"], dm
  rnd = next(r for r in rows if r[0] == "random" and r[1].startswith("72.00"))
  assert rnd[-4:] == ["0.180", "0.000", "0.232", "0.269"], rnd  # IOR 0: norm(-0.09)
