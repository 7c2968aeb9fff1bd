"""Headless Chromium: a screenshot and the loaded DOM of the HTML report.

The DOM after load carries the page's own count of decoded images
(`data-images-loaded`), so a test can check that every chart of the report shows.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Optional, Sequence

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> Optional[str]:
  """The path of a Chromium / Chrome binary on PATH (Debian package `chromium`)."""
  for name in CHROMIUM_NAMES:
    path = shutil.which(name)
    if path:
      return path
  return None


def _chromium(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
  binary = find_chromium()
  if binary is None:
    raise FileNotFoundError("no Chromium on PATH; install Debian's `chromium` "
                            "(scripts/setup.sh does)")
  cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--no-first-run", "--mute-audio", *args]
  return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(html_path: str, png_path: str, width: int = 1280, height: int = 2000,
               timeout: float = 120.0) -> str:
  """Renders `html_path` in headless Chromium and saves a PNG screenshot."""
  png_path = os.path.abspath(png_path)
  res = _chromium([f"--window-size={width},{height}", f"--screenshot={png_path}",
                   "file://" + os.path.abspath(html_path)], timeout)
  if not os.path.exists(png_path):
    raise RuntimeError(f"chromium wrote no screenshot (status {res.returncode}):\n"
                       f"{res.stderr[-1500:]}")
  return png_path


def rendered_dom(html_path: str, timeout: float = 120.0) -> str:
  """The DOM of `html_path` after load in headless Chromium (scripts run)."""
  res = _chromium(["--virtual-time-budget=10000", "--dump-dom",
                   "file://" + os.path.abspath(html_path)], timeout)
  if res.returncode != 0 or "<html" not in res.stdout:
    raise RuntimeError(f"chromium --dump-dom failed (status {res.returncode}):\n"
                       f"{res.stderr[-1500:]}")
  return res.stdout
