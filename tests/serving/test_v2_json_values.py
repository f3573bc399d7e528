"""V2 JSON tensor data: numbers only, whatever path a request's values take through the server.

A body whose JSON text holds no `true`/`false` converts its flat data without collecting each value's type;
these requests check that every kind of non-number is still refused with the same one-line message, and
that numbers in every JSON spelling give the same answer as plain floats.
"""

from __future__ import annotations

import json

import httpx
import pytest

INFER = "/v2/models/mnist/infer"
PIXELS = 784


def infer(server, data: list, **extra: object) -> httpx.Response:
    body = {"inputs": [{"name": "images", "shape": [1, PIXELS], "datatype": "FP32", "data": data}], **extra}
    return httpx.post(server.rest_url + INFER, content=json.dumps(body).encode(), timeout=30)


def refused(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert "\n" not in error
    return error


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (True, "value[783] is a boolean (true/false); values must be JSON numbers"),
        (False, "value[783] is a boolean (true/false); values must be JSON numbers"),
        ("0.5", "value[783] is a string ('0.5': send 0.1, not \"0.1\"); values must be JSON numbers"),
        (None, "value[783] is null; values must be JSON numbers"),
        ({"b": 1}, "value[783] is a JSON object; values must be JSON numbers"),
        ([0.5], "not a rectangular array: value[783] is a list of 1, where the first one at that depth is a number"),
    ],
)
def test_v2_json_data_refuses_any_value_that_is_not_a_number(server, bad: object, said: str) -> None:
    assert said in refused(infer(server, [0.5] * (PIXELS - 1) + [bad]))


def test_v2_json_booleans_are_refused_among_numbers_with_exponents(server) -> None:
    # past a few dozen "e"s the server stops looking for true/false in the text and checks every value
    data = [1e-05] * (PIXELS - 1) + [True]
    assert "value[783] is a boolean (true/false)" in refused(infer(server, data))


def test_v2_json_numbers_in_every_spelling_answer_as_floats(server) -> None:
    floats = infer(server, [0.0, 1.0] * (PIXELS // 2))
    assert floats.status_code == 200, floats.text[:300]
    for data, extra in [
        ([0, 1] * (PIXELS // 2), {}),  # integers
        ([0, 1.0] * (PIXELS // 2), {}),  # both
        ([0.0, 1.0] * (PIXELS // 2), {"id": "true false"}),  # the words elsewhere in the body
        ([0.0, 1e0] * (PIXELS // 2), {}),  # an exponent
    ]:
        answer = infer(server, data, **extra)
        assert answer.status_code == 200, answer.text[:300]
        assert answer.json()["outputs"] == floats.json()["outputs"], (data[:2], extra)
