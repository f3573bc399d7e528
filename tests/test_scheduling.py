"""The suite's xdist scheduler (tests/scheduling.py): which tests share a worker, and what starts first."""

from __future__ import annotations

from scheduling import ROOT, unit_of, weight

PAGE = "tests/docs/test_doc_blocks.py::test_page_runs_as_printed[{}]"


def test_each_docs_page_is_its_own_unit_unless_it_shares_a_fixed_port() -> None:
    assert unit_of(PAGE.format("docs/how-to/tuning.md")) != unit_of(PAGE.format("docs/how-to/train-by-hand.md"))
    # README, get-started and services start `trainflow ui` on 8001; two at once would collide
    readme = unit_of(PAGE.format("README.md"))
    assert readme == unit_of(PAGE.format("docs/get-started.md")) == unit_of(PAGE.format("docs/concepts/services.md"))
    # both serve on 8601
    assert unit_of(PAGE.format("docs/how-to/tracking.md")) == unit_of(PAGE.format("docs/how-to/your-own-data.md"))


def test_files_sharing_a_costly_session_fixture_run_in_one_worker() -> None:
    assert unit_of("tests/ui/test_browser.py::test_a") == unit_of("tests/ui/test_server_api.py::test_b")
    assert unit_of("tests/image/test_image_nodes.py::test_a") == unit_of("tests/image/test_image_pods.py::test_b")
    assert unit_of("tests/tracking/test_mlflow_tracking.py::t") == unit_of("tests/tracking/test_registry_serving.py::t")


def test_the_mlflow_server_files_are_two_units_and_a_file_with_its_own_server_is_alone() -> None:
    units = {unit_of(f"tests/tracking/{path.name}::t") for path in (ROOT / "tests" / "tracking").glob("test_*.py")}
    shared = {u for u in units if "mlflow server" in u}
    assert len(shared) == 2
    assert unit_of("tests/tracking/test_tracking_faults.py::t") == "tests/tracking/test_tracking_faults.py"
    for path in (ROOT / "tests" / "tracking").glob("test_*.py"):  # every file using the shared server is in one
        if "mlflow_server" in path.read_text():
            assert unit_of(f"tests/tracking/{path.name}::t") in shared, path.name


def test_any_other_file_is_one_unit_as_with_loadfile() -> None:
    assert unit_of("tests/serving/test_versions.py::test_a[x]") == "tests/serving/test_versions.py"
    assert unit_of("tests/serving/test_versions.py::Class::test_b") == "tests/serving/test_versions.py"


def test_what_trains_starts_before_many_quick_tests() -> None:
    image = unit_of("tests/image/test_image_pods.py::test_a")
    assert weight(image, 3) > weight("tests/e2e/test_own_data.py", 29) > weight("tests/storage/test_names.py", 44)
    trains = unit_of(PAGE.format("docs/how-to/train-by-hand.md"))
    assert weight(trains, 1) > weight(unit_of(PAGE.format("docs/how-to/shell-completion.md")), 1)
