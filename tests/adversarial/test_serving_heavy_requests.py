"""Heavy requests (issue 10, defect 4): image bombs get a 4xx naming the limit, memory stays bounded, and
health answers while decoding and inference run in worker threads."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from hostile_images import b64, bilevel_png, jpeg_claiming
from live_server import running_server
from model_files import constant_classifier_onnx, publish

PREDICT = "/v1/models/mnist:predict"


@pytest.fixture(scope="module")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("heavy") / "mnist"
    publish(base, 1, constant_classifier_onnx(3))
    return base


def predict(url: str, *images: bytes, escaped: bool = False) -> httpx.Response:
    body = json.dumps({"signature_name": "predict_images", "instances": [b64(image) for image in images]})
    if escaped:  # the same JSON, its "b64" keys spelled with \\u escapes
        body = body.replace('"b64"', '"\\u0062\\u0036\\u0034"')
    return httpx.post(url + PREDICT, content=body, headers={"content-type": "application/json"}, timeout=120)


@pytest.mark.parametrize("escaped", [False, True], ids=["plain", "b64-key-as-unicode-escapes"])
def test_health_answers_while_a_heavy_request_decodes(model_base: Path, escaped: bool) -> None:
    # ~100 M pixels of PNG in a small body: seconds of decoding, all of it off the event loop, however spelled
    heavy_images = [bilevel_png(3000, 3000)] * (12 if not escaped else 6)
    done: dict[str, float] = {}
    with running_server(model_base, max_image_pixels=10_000_000, max_request_pixels=200_000_000) as server:

        def send_heavy() -> None:
            response = predict(server.rest_url, *heavy_images, escaped=escaped)
            done["heavy"] = time.monotonic()
            done["heavy_status"] = response.status_code

        sender = threading.Thread(target=send_heavy)
        sender.start()
        deadline = time.monotonic() + 30
        while server.plane.in_flight == 0 and "heavy" not in done:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        live = httpx.get(server.rest_url + "/v2/health/live", timeout=60)
        done["live"] = time.monotonic()
        metrics = httpx.get(server.rest_url + "/metrics", timeout=60)
        done["metrics"] = time.monotonic()
        sender.join()
    assert live.json() == {"live": True} and metrics.status_code == 200
    assert done["heavy_status"] == 200
    assert done["live"] < done["heavy"] and done["metrics"] < done["heavy"], done


@pytest.mark.parametrize(
    "make, side",
    [
        (bilevel_png, 20000),  # over Pillow's own bomb limit: was a 500 (DecompressionBombError)
        (bilevel_png, 9000),
        (jpeg_claiming, 60000),
    ],
)
def test_an_image_bomb_gets_413_naming_the_limit(model_base: Path, make, side: int) -> None:
    with running_server(model_base) as server:
        response = predict(server.rest_url, make(side, side))
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert f"{side}x{side}" in error or "image 1," in error
        assert "pixels" in error and "--max-image-pixels" in error and "\n" not in error
        assert predict(server.rest_url, bilevel_png(28, 28)).status_code == 200


def test_many_small_bombs_in_one_request_hit_the_per_request_limit(model_base: Path) -> None:
    with running_server(model_base, max_image_pixels=4_000_000, max_request_pixels=10_000_000) as server:
        response = predict(server.rest_url, *[bilevel_png(1500, 1500)] * 30)
    assert response.status_code == 413
    assert "--max-request-pixels" in response.json()["error"] and "image 5 " in response.json()["error"]


def test_bombs_do_not_grow_the_servers_memory(model_base: Path) -> None:
    # three 13000x13000 PNGs in one small request took the server to 926 MB
    bombs = [bilevel_png(13000, 13000)] * 3
    process = psutil.Process()
    with running_server(model_base) as server:
        predict(server.rest_url, bilevel_png(28, 28))
        baseline = process.memory_info().rss
        peak = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.005):
                peak[0] = max(peak[0], process.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            statuses = [predict(server.rest_url, *bombs).status_code for _ in range(3)]
        finally:
            stop.set()
            sampler.join()
    assert statuses == [413] * 3
    assert peak[0] - baseline < 100 * 2**20, f"memory grew by {(peak[0] - baseline) / 2**20:.0f} MB"
