"""Where headless Chromium and its driver are (Debian's `chromium` and `chromium-driver`), and how it starts.

The `browser` fixture (tests/conftest.py) drives it through selenium."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1000,1100")
