"""Which REST requests run on the event loop: small bodies of numbers for fast models; never images or big work."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from trainflow.serving.dataplane import DEFAULT_INLINE_MAX_MICROS, inline_cost, numbers_only
from trainflow.serving.v2_rest import json_part

INLINE_SECONDS = DEFAULT_INLINE_MAX_MICROS / 1e6


def model(values_per_row: int, row_seconds: float) -> SimpleNamespace:
    return SimpleNamespace(values_per_row=values_per_row, row_seconds=row_seconds)


def v2_body(rows: int, values: int) -> bytes:
    data = [0.5] * (rows * values)
    return json.dumps({"inputs": [{"name": "x", "shape": [rows, values], "datatype": "FP32", "data": data}]}).encode()


def test_one_mnist_image_for_the_examples_mlp_is_cheap_enough_to_answer_inline() -> None:
    assert inline_cost(model(784, 30e-6), len(v2_body(1, 784))) <= INLINE_SECONDS


@pytest.mark.parametrize(
    ("values_per_row", "row_seconds", "rows"),
    [
        (784, 30e-6, 32),  # a batch of images: the body is large
        (784, 400e-6, 1),  # one image for a slow model
        (4, 2e-6, 1),  # one short row, but the same body size could hold thousands of rows for this model
    ],
)
def test_work_that_could_hold_the_event_loop_goes_to_a_worker_thread(
    values_per_row: int, row_seconds: float, rows: int
) -> None:
    body = v2_body(rows, values_per_row) + b" " * 30_000 if values_per_row == 4 else v2_body(rows, values_per_row)
    assert inline_cost(model(values_per_row, row_seconds), len(body)) > INLINE_SECONDS


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [{"b64": "iVBORw0KGgo="}]}',
        b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["..."]}]}',
        b'{"instances": [{"\\u0062\\u0036\\u0034": "iVBORw0KGgo="}]}',
        b'{"signature_name": "predict_images", "instances": [{"b64": "iVBORw0KGgo="}]}',
        b'{"inputs": [{"name": "b", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}]}',
    ],
)
def test_bodies_that_may_hold_encoded_images_are_never_answered_inline(body: bytes) -> None:
    assert not numbers_only(body)
    assert numbers_only(v2_body(1, 784))


def test_a_body_of_numbers_whose_keys_hold_the_markers_letters_is_still_numbers_only() -> None:
    body = b'{"inputs": [{"name": "Batch_b", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1]}], '
    body += b'"parameters": {"binary_data_output": false}}'
    assert numbers_only(body)


def test_a_binary_tensor_body_is_judged_by_its_json_header_not_its_raw_bytes() -> None:
    raw = bytes(range(256)) * 12  # FP32 data holds every byte, a backslash among them
    header = (
        b'{"inputs": [{"name": "x", "shape": [1, 768], "datatype": "FP32", "parameters": {"binary_data_size": 3072}}]}'
    )
    assert numbers_only(json_part(header + raw, str(len(header))))
    images = header.replace(b"FP32", b"BYTES")
    assert not numbers_only(json_part(images + raw, str(len(images))))
    assert not numbers_only(json_part(header + raw, "not a length"))  # refused later; never inline
