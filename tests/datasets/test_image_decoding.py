"""Image folders decode alike in worker processes and in threads, and a bad image still names itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.datasets.sample_data import write_colour_folders
from trainflow.datasets import DataFormatError, DatasetCache, FormatOptions, images, load_dataset


def synced_arrays(cache: DatasetCache, source: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    dataset = load_dataset(cache.ensure(str(source), name).path)
    return np.asarray(dataset.train.images).copy(), np.asarray(dataset.test.images).copy()


def test_images_decoded_in_processes_equal_those_decoded_in_threads(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_colour_folders(tmp_path / "src", per_class=(40, 10))
    monkeypatch.setattr(images, "_BLOCK", 7)  # blocks that do not divide the image count
    threads = synced_arrays(cache, source, "threads")
    monkeypatch.setattr(images, "_PROCESS_MIN", 1)
    processes = synced_arrays(cache, source, "processes")
    assert all(np.array_equal(a, b) for a, b in zip(threads, processes, strict=True))
    assert threads[0].shape == (120, 3, 10, 12)


def test_a_bad_image_decoded_in_a_worker_process_is_one_line_naming_it(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_colour_folders(tmp_path / "src", per_class=(40, 10), odd_size=False)
    (source / "train" / "green" / "031.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    monkeypatch.setattr(images, "_PROCESS_MIN", 1)
    with pytest.raises(DataFormatError, match=r"train/green/031\.jpg") as refused:
        cache.ensure(str(source), "d")
    assert "\n" not in str(refused.value) and cache.names() == []


def test_large_jpegs_shrunk_to_the_declared_size_keep_their_colour(cache: DatasetCache, tmp_path: Path) -> None:
    for split, count in (("train", 3), ("test", 1)):
        for cls, rgb in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            folder = tmp_path / "src" / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (640, 480), rgb).save(folder / f"{i}.jpg", quality=90)
    result = cache.ensure(str(tmp_path / "src"), "d", options=FormatOptions(image_size=(24, 32)))
    train = np.asarray(load_dataset(result.path).train.images)
    assert train.shape == (6, 3, 24, 32)
    assert np.allclose(train[-1].mean(axis=(1, 2)), (220, 30, 30), atol=6)  # classes sorted: blue, then red


def expected_rows(source: Path, split: str, size: tuple[int, int]) -> np.ndarray:
    """Every image of `split` in class then name order, decoded and resized with PIL directly."""
    rows = []
    for path in sorted((source / split).glob("*/*")):
        image = Image.open(path).convert("RGB")
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        rows.append(np.asarray(image).transpose(2, 0, 1))
    return np.stack(rows)


@pytest.mark.parametrize("where", ["first image", "a later image"])
def test_an_image_at_another_size_is_resized_to_the_most_common_size_wherever_it_is(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    source = write_colour_folders(tmp_path / "src", per_class=(40, 10), odd_size=False)
    odd = source / "train" / ("blue" if where == "first image" else "red") / "000.png"
    Image.open(odd).resize((24, 20)).save(odd)  # the arrays are first built at the first image's size
    monkeypatch.setattr(images, "_BLOCK", 7)
    monkeypatch.setattr(images, "_PROCESS_MIN", 1)
    train, test = synced_arrays(cache, source, "d")
    assert np.array_equal(train, expected_rows(source, "train", (10, 12)))
    assert np.array_equal(test, expected_rows(source, "test", (10, 12)))


def test_a_link_in_an_image_files_place_is_refused_not_followed(cache: DatasetCache, tmp_path: Path) -> None:
    source = write_colour_folders(tmp_path / "src", odd_size=False)
    result = cache.ensure(str(source), "d")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (12, 10), (1, 2, 3)).save(secret)
    planted = result.path / "train" / "green" / "000.png"
    planted.unlink()
    planted.symlink_to(secret)
    with pytest.raises(DataFormatError, match=r"train/green/000\.png cannot be read"):
        images.build_images(result.path, sorted(cache.manifest("d").files), FormatOptions(), tmp_path)
