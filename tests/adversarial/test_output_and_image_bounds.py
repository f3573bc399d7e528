"""Second lines of defence: a step's output keys stay file names, a predict image stays a bounded decode (issue 22)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from trainflow.cli.output import write_outputs
from trainflow.client.errors import ClientError
from trainflow.client.images import load_image_file
from trainflow.pipelines import PipelineError


@pytest.mark.parametrize("key", ["../escaped", "a/b", ".hidden", ""])
def test_outputs_whose_key_is_not_a_name_are_refused_and_nothing_is_written(tmp_path: Path, key: str) -> None:
    folder = tmp_path / "outputs"
    folder.mkdir()
    with pytest.raises(PipelineError, match="output key"):
        write_outputs(f"{folder}/", {"ok": "1", key: "x"})
    assert list(tmp_path.rglob("*")) == [folder]


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (what a decompression bomb looks like)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def test_a_predict_image_claiming_a_billion_pixels_is_one_line_not_a_decode(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(40_000, 40_000))
    with pytest.raises(ClientError, match="bomb.png: it has more than .* pixels; resize it to about 28x28"):
        load_image_file(path, (1, 28, 28))
