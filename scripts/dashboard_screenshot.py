"""Take docs/assets/dashboard.png: a real run's page in the dashboard, through Debian's chromium (playwright).

    .venv/bin/python scripts/dashboard_screenshot.py [--data-url ../shared/data/mnist-10k] [--out docs/assets/dashboard.png]

Runs `trainflow run` (a short training) in a scratch TRAINFLOW_HOME, opens the run's page in `trainflow ui`
(its steps, curves and figures) and saves it; then deletes the run and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-url", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "assets" / "dashboard.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="trainflow-shot-") as home:
        env = {**os.environ, "TRAINFLOW_HOME": home}
        tf = [str(BIN / "trainflow")]
        subprocess.run([*tf, "run", "--data-url", args.data_url, "--steps", "300"], env=env, check=True)
        name = json.loads(subprocess.run([*tf, "list", "-o", "json"], env=env, capture_output=True, check=True).stdout)[
            0
        ]["name"]
        port = _free_port()
        ui = subprocess.Popen([*tf, "ui", "--port", str(port)], env=env)
        try:
            time.sleep(3)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
                page.goto(f"http://127.0.0.1:{port}/#/workflows/{name}")
                page.wait_for_timeout(4000)  # the DAG, the curves and the model panel load
                page.screenshot(path=args.out, full_page=False)
                browser.close()
        finally:
            ui.terminate()
            ui.wait(timeout=30)
            subprocess.run([*tf, "delete", "--all"], env=env, check=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
