"""Issue 22, item 6: images are decoded as PNG, JPEG or BMP only, whatever PIL could otherwise read.

A file's name says nothing of its content, and PIL picks a decoder from the content: TIFF, PPM and GIF
named .png used to become training images, and EPS was handed to Ghostscript. Image folders, the
files `trainflow predict` sends and the digits drawn on the dashboard are each refused in one line.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.datasets.sample_data import write_colour_folders
from trainflow.client import ClientError
from trainflow.client.files import load_examples
from trainflow.ui import UiError
from trainflow.ui.digits import digit_from_png


def trainflow(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ.copy()
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), (220, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["TIFF", "PPM", "GIF", "EPS"])
def test_image_of_another_format_named_png_is_refused_at_sync_naming_the_file(
    trainflow_home: Path, tmp_path: Path, fmt: str
) -> None:
    source = write_colour_folders(tmp_path / "src", odd_size=False)
    (source / "train" / "red" / "zz.png").write_bytes(encoded(fmt))

    line = one_error_line(trainflow("data", "sync", str(source), "--name", "d"))

    assert "train/red/zz.png" in line and "PNG, JPEG or BMP" in line and "'d'" in line
    assert not (trainflow_home / "cache" / "datasets" / "d").exists()


def test_eps_named_png_never_reaches_ghostscript(trainflow_home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ghostscript-ran"
    fake_gs = bin_dir / "gs"
    fake_gs.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
    fake_gs.chmod(0o755)
    source = write_colour_folders(tmp_path / "src", odd_size=False)
    (source / "test" / "green" / "drawing.png").write_bytes(encoded("EPS"))

    out = trainflow("data", "sync", str(source), "--name", "d", path=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    assert not marker.exists(), f"gs ran with: {marker.read_text()}"
    assert "test/green/drawing.png" in one_error_line(out)


@pytest.fixture
def fake_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `gs` first on PATH, in this process, that leaves the returned marker file when anything runs it."""
    from PIL import EpsImagePlugin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ghostscript-ran"
    (bin_dir / "gs").write_text(f'#!/bin/sh\necho "$@" >> {marker}\n')
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # PIL remembers whether it found gs before
    return marker


@pytest.mark.parametrize("fmt", ["EPS", "TIFF"])
def test_predict_image_file_of_another_format_is_refused_and_never_reaches_ghostscript(
    fake_ghostscript: Path, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "digit.png"
    path.write_bytes(encoded(fmt))

    with pytest.raises(ClientError, match=r"digit\.png: it is not PNG or JPEG data"):
        load_examples(path, (784,))
    assert not fake_ghostscript.exists()


@pytest.mark.parametrize("fmt", ["EPS", "TIFF"])
def test_dashboard_drawn_digit_of_another_format_is_refused_and_never_reaches_ghostscript(
    fake_ghostscript: Path, fmt: str
) -> None:
    with pytest.raises(UiError, match="send a PNG"):
        digit_from_png(encoded(fmt))
    assert not fake_ghostscript.exists()
