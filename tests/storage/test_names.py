"""Which object names can become paths under a directory, and why the others cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainflow.storage import StorageError, open_store
from trainflow.storage import names as storage_names
from trainflow.storage.names import ClashScreen, clash_problem, is_hidden, name_problem, shown


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "is empty"),
        ("../x", "'..' path segment"),
        ("a/../../x", "'..' path segment"),
        ("a/..", "'..' path segment"),
        ("/etc/passwd", "absolute path"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("./a", "'.' path segment"),
        ("a/./b", "'.' path segment"),
        ("a\\..\\b", "backslash"),
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("\x1b[31mred", "U+001B"),
        ("abc\u202etxt.exe", "U+202E"),  # right-to-left override: prints as something else
        ("a\u200bb", "U+200B"),  # zero-width space
        ("a\u2028b", "U+2028"),
        ("\uff0e\uff0e/x", "'..' path segment once Unicode-normalised"),  # fullwidth dots
        ("a\u2025/x", None),  # two-dot leader inside a longer segment: harmless
        ("\u2025/x", "'..' path segment once Unicode-normalised"),
        ("x" * 256, "longer than 255 bytes"),
        ("\u00e9" * 128, "longer than 255 bytes"),  # 256 bytes in UTF-8
        ("a/" * 600 + "b", "bytes long"),
        ("a\udcffb", "U+DCFF"),  # a lone surrogate: undecodable bytes of a local file name
    ],
)
def test_names_that_cannot_be_relative_paths_say_why(name: str, why: str | None) -> None:
    problem = name_problem(name)
    if why is None:
        assert problem is None
    else:
        assert problem is not None and why in problem


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "train-images-idx3-ubyte.gz",
        "a/b/c.txt",
        "x" * 255,
        "caf\u00e9/\u65e5\u672c.bin",
        "a..b",
        "...",
        "a b",
        "a:b",
        "-x",
        "x/" * 400 + "y",
    ],
)
def test_ordinary_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None


def test_hidden_names_have_a_dot_at_the_start_of_a_segment() -> None:
    assert is_hidden(".DS_Store") and is_hidden("a/.keep/b") and not is_hidden("a.b/c.")


@pytest.mark.parametrize(
    ("names", "clashing", "why"),
    [
        (["x", "x/y"], "x", "also a folder"),
        (["a/b/c", "a/b"], "a/b", "also a folder"),
        (["a/b/c", "a"], "a", "also a folder"),
        (["caf\u00e9", "cafe\u0301"], "caf\u00e9", "Unicode-normalised"),  # NFC vs NFD: one file on macOS
    ],
)
def test_names_that_cannot_share_a_directory_clash(names: list[str], clashing: str, why: str) -> None:
    found = clash_problem(names)
    assert found is not None and found[0] == clashing and why in found[1]


def test_distinct_names_do_not_clash() -> None:
    assert clash_problem(["a/b", "a/c", "ab", "a-b/c", "A"]) is None
    assert clash_problem(["a", "a"]) == ("a", "is listed twice")


def screened(names: list[str]) -> ClashScreen:
    screen = ClashScreen()
    for name in names:
        screen.add(name)
    return screen


@pytest.mark.parametrize(
    "names",
    [["x", "x/y"], ["a/b/c", "a/b"], ["a/b/c", "a"], ["caf\u00e9", "cafe\u0301"], ["a", "a"], ["d/x/1", "e/2", "d/x"]],
)
@pytest.mark.parametrize("in_sets", [4096, 0], ids=["sets", "numpy"])
def test_the_screen_of_a_streamed_listing_suspects_every_clash(
    names: list[str], in_sets: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_names, "_SCREENED_IN_SETS", in_sets)
    assert screened(names).suspect() and screened(names[::-1]).suspect()


@pytest.mark.parametrize("in_sets", [10_000, 0], ids=["sets", "numpy"])
def test_the_screen_lets_distinct_names_through(in_sets: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_names, "_SCREENED_IN_SETS", in_sets)
    names = ["a/b", "a/c", "ab", "a-b/c", "A", *(f"train/{i % 7}/{i:05d}.png" for i in range(5000))]
    assert not screened(names).suspect()


def test_shown_names_stay_on_one_line_and_short() -> None:
    assert shown("a\nb") == "'a\\nb'"
    long = shown("head" + "k" * 5000 + "tail")
    assert len(long) < 340 and "5008 characters" in long and long.startswith("'head") and "tail'" in long


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "a/../../x"])
def test_local_store_refuses_names_outside_its_directory(tmp_path: Path, name: str) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "outside").write_text("secret")
    store = open_store(str(tmp_path / "base"))
    with pytest.raises(StorageError, match="refusing object name"):
        store.read_bytes(name)
    with pytest.raises(StorageError, match="refusing object name"):
        store.write_bytes(name, b"x")
    assert (tmp_path / "outside").read_text() == "secret"
