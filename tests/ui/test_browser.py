"""The dashboard in a real headless Chromium: the live list, the step DAG, the curves, the canvas.

Runs before test_server_api.py (file order) so that the first test sees the shared workflow running.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.conftest import BROKEN, IRIS, TRAIN_STEPS, WORKFLOW, Dashboard

LIVE = "ui-live"  # a run submitted while the page watches

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium: apt-get install -y chromium"
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[test]'")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert not errors, f"the page raised: {errors}"
    finally:
        context.close()


def test_the_list_and_the_dag_follow_a_run_live_until_it_succeeds(
    dashboard: Dashboard, page: object, mnist_dir: Path
) -> None:
    # The page is open before the run is submitted: the shared run may already have ended by now.
    page.goto(dashboard.url + "/")
    dashboard.submit(LIVE, str(mnist_dir), "--no-cache")
    row = page.locator(f'tr[data-workflow="{LIVE}"]')
    expect(row).to_have_attribute("data-status", re.compile("Pending|Running"))
    expect(page.locator("#live")).to_have_class(re.compile("active"))
    row.locator("a").click()

    dag = page.locator("#dag")
    expect(dag.locator("g.node")).to_have_count(6)
    expect(dag.locator('g.node[data-status="Running"]').first).to_be_visible()
    expect(dag.locator('g.node[data-step="serve-model"]')).to_have_attribute("data-status", "Pending")
    # no reload from here on: the page polls
    expect(dag.locator('g.node[data-status="Succeeded"]')).to_have_count(6, timeout=280_000)
    expect(page.locator("#wf-status .pill")).to_have_text("Succeeded")
    expect(page.locator("#progress .progress-text")).to_have_text(f"step {TRAIN_STEPS} / {TRAIN_STEPS}")
    page.locator(".crumbs a").click()
    expect(page.locator(f'tr[data-workflow="{LIVE}"]')).to_have_attribute("data-status", "Succeeded")


def test_the_workflow_page_shows_steps_curves_links_and_logs(finished: Dashboard, page: object) -> None:
    page.goto(f"{finished.url}/#/workflows/{WORKFLOW}")
    for step in ("download-dataset", "get-workflow-info", "tensorboard", "train-model", "export-model", "serve-model"):
        expect(page.locator(f'#dag g.node[data-step="{step}"]')).to_have_attribute("data-status", "Succeeded")
    loss = page.locator('#chart-loss path.series[data-tag="train/loss"]')
    expect(loss).to_have_count(1)
    assert int(loss.get_attribute("data-points")) >= 5
    expect(page.locator("#chart-accuracy .marker text")).to_contain_text("test ")
    expect(page.locator("#links")).to_contain_text("tensorboard url")
    serve = next(s for s in finished.workflow()["steps"] if s["name"] == "serve-model")["outputs"]
    expect(page.locator(f'#links a[href="{serve["rest-url"]}"]')).to_be_visible()
    expect(page.locator("#params")).to_contain_text("model-train-steps")

    page.locator('#dag g.node[data-step="export-model"]').click()
    expect(page.locator("#log")).to_have_attribute("data-step", "export-model")
    expect(page.locator("#log")).to_contain_text("export-model")


def test_a_failed_run_shows_the_failed_step_and_what_was_never_run(finished: Dashboard, page: object) -> None:
    page.goto(f"{finished.url}/#/workflows/{BROKEN}")
    dag = page.locator("#dag")
    expect(dag.locator('g.node[data-step="download-dataset"]')).to_have_attribute("data-status", "Failed")
    for step in ("train-model", "export-model", "serve-model"):
        expect(dag.locator(f'g.node[data-step="{step}"]')).to_have_attribute("data-status", "Omitted")
    expect(page.locator("#wf-message")).to_contain_text("download-dataset failed")
    expect(page.locator("#log")).to_have_attribute("data-step", "download-dataset")  # the failed step's log opens
    expect(page.locator("#predict-button")).to_be_disabled()


def test_a_test_set_digit_painted_on_the_canvas_is_classified(
    finished: Dashboard, page: object, mnist_dir: Path
) -> None:
    from trainflow.datasets import load_split

    test = load_split(mnist_dir, "test")
    page.goto(f"{finished.url}/#/workflows/{WORKFLOW}")
    expect(page.locator("#predict-button")).to_be_enabled()
    for index in (0, 1, 2):  # a 7, a 2 and a 1 in MNIST's test order
        page.evaluate(
            """pixels => {
            const small = document.createElement("canvas"); small.width = small.height = 28;
            const image = small.getContext("2d").createImageData(28, 28);
            pixels.forEach((v, i) => image.data.set([v, v, v, 255], i * 4));
            small.getContext("2d").putImageData(image, 0, 0);
            const pad = document.getElementById("digit-canvas").getContext("2d");
            pad.imageSmoothingEnabled = true;
            pad.drawImage(small, 0, 0, 280, 280);
        }""",
            test.images[index].reshape(-1).tolist(),
        )
        page.locator("#predict-button").click()
        label = str(int(test.labels[index]))
        expect(page.locator("#prediction")).to_have_attribute("data-class", label)
        expect(page.locator(f'.score-row[data-digit="{label}"]')).to_have_class(re.compile("top"))
        page.locator("#clear-button").click()
        expect(page.locator("#prediction")).to_have_attribute("data-class", "")


def settled_box(page: object, locator: object) -> dict[str, float]:
    """`locator`'s box once it stays where it is for 0.2 s (scrolled into view first)."""
    box = None
    for _ in range(100):
        locator.scroll_into_view_if_needed()
        now = locator.bounding_box()
        if now is not None and now == box:
            return now
        box = now
        page.wait_for_timeout(200)
    raise AssertionError(f"the element kept moving: last at {box}")


def test_a_one_drawn_with_the_mouse_is_recognised(finished: Dashboard, page: object) -> None:
    page.goto(f"{finished.url}/#/workflows/{WORKFLOW}")
    expect(page.locator("#predict-button")).to_be_enabled()
    pad = page.locator("#digit-canvas")
    box = settled_box(page, pad)  # the charts above it render as their data comes: a stroke must land on the pad
    x, top = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.15
    page.mouse.move(x, top)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x - i * 0.6, top + i * box["height"] * 0.035)
    page.mouse.up()  # releasing the stroke asks the model
    expect(page.locator("#pad-hint")).to_be_hidden()  # the stroke began on the pad
    try:
        expect(page.locator("#prediction")).to_have_attribute("data-class", "1", timeout=15_000)
    except AssertionError as exc:
        said = page.locator("#try-error").inner_text() or page.locator("#pred-digit").inner_text()
        raise AssertionError(f"no 1 predicted; the pad shows {said!r}") from exc
    expect(page.locator("#pred-conf")).to_contain_text("% confident")


def test_a_tabular_model_gets_a_form_and_class_names_on_its_bars(iris: Dashboard, page: object) -> None:
    page.goto(f"{iris.url}/#/workflows/{IRIS}")
    expect(page.locator("#feature-form input")).to_have_count(4)
    expect(page.locator(".score-row .score-digit")).to_have_text(["setosa", "versicolor", "virginica"])
    expect(page.locator("#digit-canvas")).to_be_hidden()
    for i, value in enumerate([5.1, 3.5, 1.4, 0.2]):  # the first iris in the data set: a setosa
        page.locator(f'#feature-form input[data-feature="{i}"]').fill(str(value))
    page.locator("#predict-button").click()
    expect(page.locator("#pred-digit")).to_have_text("setosa")
    expect(page.locator('.score-row[data-digit="0"]')).to_have_class(re.compile("top"))


def test_runs_ticked_in_the_list_are_compared_with_their_curves_overlaid(finished: Dashboard, page: object) -> None:
    page.goto(finished.url + "/")
    button = page.locator("#compare")
    expect(button).to_be_disabled()
    for name in (WORKFLOW, BROKEN):
        page.locator(f'tr[data-workflow="{name}"] .pick input').check()
    expect(button).to_have_text("Compare 2 runs")
    button.click()
    expect(page).to_have_url(re.compile(r"#/compare\?run=.*&run="))
    loss = page.locator(f'#chart-loss path.series[data-tag="{WORKFLOW}"]')
    expect(loss).to_have_count(1)
    assert int(loss.get_attribute("data-points")) >= 5
    expect(page.locator('#cmp-table tr[data-row="status"]')).to_have_class("differs")
    expect(page.locator("#cmp-table thead")).to_contain_text(BROKEN)
