"""The predict client and `trainflow predict` against a live server, in every protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from trainflow.cli.main import cli
from trainflow.client import PROTOCOLS, ClientError, ServerUnreachable, predict_images, render_digit
from trainflow.datasets import load_split


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    split = load_split(mnist_dir, "test")
    return np.asarray(split.images[:20]), np.asarray(split.labels[:20])


def test_every_protocol_gives_the_same_predictions_for_uint8_digits(addresses, digits) -> None:
    images, labels = digits
    answers = {p: predict_images(addresses[p], p, images) for p in PROTOCOLS}
    classes = {p: [a.cls for a in answer] for p, answer in answers.items()}
    assert all(c == classes["grpc"] for c in classes.values())
    assert np.mean(np.array(classes["grpc"]) == labels) >= 0.7
    first = answers["rest"][0]
    assert len(first.scores) == 10 and first.score == max(first.scores)
    np.testing.assert_allclose(answers["v2-grpc"][0].scores, first.scores, rtol=1e-5)


def test_float_images_and_one_image_are_accepted(addresses, digits) -> None:
    images, _ = digits
    as_uint8 = predict_images(addresses["rest"], "rest", images[:3])
    as_float = predict_images(addresses["rest"], "rest", images[:3].astype(np.float32) / 255.0)
    one = predict_images(addresses["rest"], "rest", images[0])
    assert [p.cls for p in as_uint8] == [p.cls for p in as_float] and one[0].cls == as_uint8[0].cls


def test_bad_images_and_unreachable_servers_raise_clear_errors(addresses) -> None:
    with pytest.raises(ClientError, match=r"shape \[2, 10\]: the model takes \[N, 784\]"):
        predict_images(addresses["rest"], "rest", np.zeros((2, 10)))
    with pytest.raises(ServerUnreachable, match="cannot reach"):
        predict_images("127.0.0.1:1", "rest", np.zeros((1, 28, 28)))
    with pytest.raises(ClientError, match="unknown protocol"):
        predict_images(addresses["rest"], "soap", np.zeros((1, 28, 28)))
    with pytest.raises(ClientError, match="not served here"):
        predict_images(addresses["grpc"], "grpc", np.zeros((1, 28, 28)), model_name="other")


def test_render_digit_draws_the_strokes() -> None:
    image = np.zeros((28, 28), np.float32)
    image[4:24, 13:15] = 1.0  # a "1"
    picture = render_digit(image).split("\n")
    assert len(picture) == 14 and all(line.strip() in ("", "@@") for line in picture)
    assert sum(line.strip() == "@@" for line in picture) == 10


def test_predict_command_shows_each_digit_and_the_accuracy(addresses, mnist_dir) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "--server",
            addresses["v2-rest"],
            "--protocol",
            "v2-rest",
            "--data-dir",
            str(mnist_dir),
            "--num",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("predicted") == 3 and "@" in result.output
    assert "Accuracy: " in result.output.splitlines()[-1]


def test_predict_command_keeps_the_example_clients_contract(addresses, mnist_dir) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "--server",
            addresses["grpc"],
            "--data-dir",
            str(mnist_dir),
            "--num_tests",
            "60",
            "--concurrency",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "." * 60
    assert lines[-1].startswith("Inference error rate: ") and lines[-1].endswith("%")


def test_predict_command_reads_image_files(addresses, digits, tmp_path: Path) -> None:
    images, _ = digits
    inverted = tmp_path / "digit.png"  # dark ink on white paper, as people draw: inverted to MNIST's look
    Image.fromarray(255 - images[0]).save(inverted)
    result = CliRunner().invoke(cli, ["predict", "--server", addresses["rest"], "--protocol", "rest", str(inverted)])
    assert result.exit_code == 0, result.output
    expected = predict_images(addresses["rest"], "rest", images[:1])[0].cls
    assert f"digit.png: predicted {expected}, score" in result.output


def test_predict_command_fails_in_one_line_when_the_server_is_down(mnist_dir) -> None:
    result = CliRunner().invoke(
        cli, ["predict", "--server", "127.0.0.1:1", "--protocol", "rest", "--data-dir", str(mnist_dir), "--num", "1"]
    )
    assert result.exit_code == 69  # sysexits' EX_UNAVAILABLE, not 143 (SIGTERM to a shell)
    assert result.output.strip().startswith("error: cannot reach the model server")


@pytest.mark.parametrize("protocol", ["grpc", "v2-rest"])
def test_the_example_client_stops_at_once_when_no_server_answers(protocol: str, mnist_dir) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "--server",
            "127.0.0.1:1",
            "--protocol",
            protocol,
            "--data-dir",
            str(mnist_dir),
            "--num-tests",
            "200",
            "--timeout",
            "2",
        ],
    )
    assert result.exit_code == 69, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: cannot reach the model server at ") and "127.0.0.1:1" in line
    assert "trainflow services" in line and "E" * 10 not in result.output
