"""Shared pytest set-up: quiet TensorFlow, the `slow` marker gate, and test order.

The default suite runs on two pytest-xdist workers (`bash scripts/setup.sh test`). Each
worker keeps TensorFlow to one intra-op thread, so the two workers share the two cores
instead of each spreading tiny ops over both (the tests' tensors are small; two
threads per op only add hand-offs). Tests marked `heavy` are collected first, so the
long ones start early and the short ones fill in behind them.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
  # Read by TensorFlow when it starts (before any test module imports it), and passed
  # on to the apps the tests run in subprocesses.
  os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402


def pytest_addoption(parser):
  parser.addoption("--runslow", action="store_true", default=False,
                   help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
  items.sort(key=lambda item: "heavy" not in item.keywords)  # stable: heavy ones first
  if config.getoption("--runslow") or os.environ.get("TFCONDENSE_SLOW") == "1":
    return
  skip = pytest.mark.skip(reason="slow: run with --runslow or TFCONDENSE_SLOW=1")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
