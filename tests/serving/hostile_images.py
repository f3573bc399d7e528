"""Images as an attacker builds them: tiny files that declare huge sizes, made without allocating the pixels."""

from __future__ import annotations

import base64
import io
import struct
import zlib


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of width x height: a few KB for gigapixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0, then the packed pixels
    packer = zlib.compressobj(9)
    rows_per_call = max(1, 1_000_000 // len(row))
    compressed = [packer.compress(row * rows_per_call) for _ in range(height // rows_per_call)]
    compressed += [packer.compress(row * (height % rows_per_call)), packer.flush()]
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", b"".join(compressed))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is rewritten to declare width x height."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")  # SOF0: marker, length (2), precision (1), height (2), width (2)
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def b64(data: bytes) -> dict[str, str]:
    """The TF Serving REST form of an encoded image."""
    return {"b64": base64.b64encode(data).decode()}
