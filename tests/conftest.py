"""Shared pytest set-up: quiet TensorFlow, and the `slow` marker gate.

The default suite runs on two pytest-xdist workers (`bash scripts/setup.sh test`);
`bash scripts/setup.sh quick` leaves out the tests marked `heavy`.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


def pytest_addoption(parser):
  parser.addoption("--runslow", action="store_true", default=False,
                   help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--runslow") or os.environ.get("TFCONDENSE_SLOW") == "1":
    return
  skip = pytest.mark.skip(reason="slow: run with --runslow or TFCONDENSE_SLOW=1")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
