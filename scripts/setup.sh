#!/usr/bin/env bash
# Installs everything tfcondense needs (idempotent), then runs one job.
#
#   bash scripts/setup.sh demo   # install, condense Fashion-MNIST with IDC, compare with the shipped K-Center and Random sets
#   bash scripts/setup.sh test   # install, lint (ruff), then run the default test suite
#   bash scripts/setup.sh quick  # the same without the tests marked heavy (under 2 minutes)
#   bash scripts/setup.sh        # install only
#
# What it installs: Debian's dataset-fashion-mnist (idx files under
# /usr/share/datasets/fashion-mnist), espeak-ng (speech corpus generator) and chromium
# (headless screenshots of the benchmark report), a virtual environment in .venv, and
# this package in editable mode with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in dataset-fashion-mnist espeak-ng chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[setup] apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.tfcondense-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] pip install -e .[test] (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi

case "${1:-}" in
  demo)
    mkdir -p runs
    # 1. Condense Fashion-MNIST with IDC (10 stored images per class, factor 2 -> 40
    #    formed) for a 4-minute budget; resumable, prints the grid PNG paths.
    .venv/bin/python -m apps.condense --source fashion_mnist --method idc --ipc 10 \
      --factor 2 --precision mixed_bfloat16 --minutes 4 --workdir runs/demo_idc
    # 2. Train ConvNet-3 on it and on the shipped K-Center and Random sets of the same
    #    storage (datasets_builders/, the sets `tfds.load("condensed_fashion_mnist/...")`
    #    serves; selecting K-Center afresh would add 3.5 minutes of embedding training);
    #    print the table (rows kept in runs/demo.json: a second run reuses them).
    shipped=datasets_builders/condensed_fashion_mnist/artifacts
    exec .venv/bin/python -m apps.evaluate --source fashion_mnist \
      --artifact "runs/demo_idc/artifact,$shipped/kcenter_ipc10,$shipped/random_ipc10" \
      --protocol quick --repetitions 2 --output runs/demo.json
    ;;
  test|quick)
    mode=$1; shift
    # Lint first (a second; rules in pyproject.toml), then the tests on two pytest-xdist
    # workers (TFCONDENSE_TEST_WORKERS; 0 runs them in this process). `quick` leaves out
    # the tests marked heavy (apps in subprocesses, condensation loops, the bench suites):
    # the edit-test loop's subset.
    .venv/bin/ruff check --quiet . || { echo "[setup] lint failed: .venv/bin/ruff check ." >&2; exit 1; }
    select=()
    [ "$mode" = quick ] && select=(-m "not heavy")
    workers=${TFCONDENSE_TEST_WORKERS:-2}
    dist=()
    # loadfile: a module's tests on one worker, so a module fixture (the bench suites'
    # small run, the built wheel) is made once (loadgroup's xdist_group marks are
    # ignored under pytest 9.2, pytest-dev/pytest-xdist#1386).
    [ "$workers" != 0 ] && dist=(--dist loadfile)
    exec .venv/bin/python -m pytest -q -n "$workers" "${dist[@]}" "${select[@]}" "$@"
    ;;
  "") ;;
  *) echo "usage: bash scripts/setup.sh [demo|test|quick [pytest args]]" >&2; exit 2 ;;
esac
