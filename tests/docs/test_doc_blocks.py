"""Docs that cannot rot: every ```bash and ```python block of every docs page and of the README runs as printed.

Each page's runnable blocks run in order in one bash session (`set -euo pipefail`; a python block is run
by the venv's python at its place) in a scratch workspace: cwd `W/repo` holding a copy of `examples/`,
`constraints.txt` and a `.venv` link to this venv; `W/shared` linked to the real `../shared`; a fresh
`TRAINFLOW_HOME`; the venv's bin first on PATH; and the AWS variables of a moto S3 server holding an empty
bucket `mybucket` (HOME is a scratch folder too). At the page's end its workflows are stopped and deleted (their services with them)
and every process the session started is killed. A block that cannot run here carries
`<!-- docs-test: skip REASON -->` on the line before its fence; a block that is neither fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.docs.blocks import ROOT, TRAINS, Block, blocks, pages
from tests.servers import AWS_TEST_ENV, start_moto, stop

SHARED = ROOT.parent / "shared"
VENV_BIN = Path(sys.executable).parent
PAGE_TIMEOUT = 1200


def _runnable(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.runs]


def _page_params() -> list[object]:
    params = []
    for path in pages():
        runnable = _runnable(path)
        if not runnable:
            continue
        trains = any(TRAINS.search(b.code) for b in runnable)
        marks = [pytest.mark.slow] if trains else []
        params.append(pytest.param(path, id=str(path.relative_to(ROOT)), marks=marks))
    return params


def test_every_block_runs_or_says_why_not() -> None:
    problems = []
    for path in pages():
        for block in blocks(path):
            if block.kind == "unknown":
                problems.append(f"{block.where()}: a fence without a known language ({block.lang or 'none'})")
            elif block.skip == "" and block.kind != "shown":
                problems.append(f"{block.where()}: `docs-test: skip` needs a reason (what it needs that is not here)")
    assert not problems, "\n".join(problems)


def test_the_convention_is_read_as_documented(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\necho runs\n```\n"
        "<!-- docs-test: skip needs a cluster -->\n```bash\nkubectl get pods\n```\n"
        "<!-- docs-test: skip -->\n```python\nprint(1)\n```\n"
        "```console\n$ trainflow list\n```\n"
        "```\nno language\n```\n"
        "- a list item\n\n  ```python\n  print('indented')\n  ```\n"
    )
    found = blocks(page)
    assert [(b.kind, b.skip, b.runs) for b in found] == [
        ("bash", None, True),
        ("bash", "needs a cluster", False),
        ("python", "", False),
        ("shown", None, False),
        ("unknown", None, False),
        ("python", None, True),
    ]
    assert found[-1].code == "print('indented')\n"


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "W" / "repo"
    repo.mkdir(parents=True)
    shutil.copytree(ROOT / "examples", repo / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "constraints.txt", repo / "constraints.txt")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "bin").symlink_to(VENV_BIN)
    (tmp_path / "W" / "shared").symlink_to(SHARED)
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "user").mkdir()
    return repo, home


def _script(page: list[Block], repo: Path) -> str:
    """One bash session: each block after a marker line naming it (a python block as a file the venv runs)."""
    parts = ["set -euo pipefail"]
    for n, block in enumerate(page):
        parts.append(f"echo '::docs-block {block.where()}' >&2")
        if block.kind == "python":
            code = repo.parent / f"block-{n}.py"
            code.write_text(block.code)
            parts.append(f"python {code}")
        else:
            parts.append(block.code)
    return "\n".join(parts) + "\n"


def _env(home: Path, endpoint: str) -> dict[str, str]:
    # a page runs as in a fresh shell: no MLflow URI another test of this worker set in os.environ (mlflow does)
    leaked = ("AWS_", "TRAINFLOW_", "PYTEST_", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {k: v for k, v in os.environ.items() if not k.startswith(leaked)}
    env.update(AWS_TEST_ENV)
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        TRAINFLOW_HOME=str(home),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home.parent / "user"),  # what a page writes under ~ (a completion script) stays in the scratch folder
        PYTHONUNBUFFERED="1",
    )
    return env


def _clean_up(session: subprocess.Popen[str], env: dict[str, str], cwd: Path) -> None:
    """Stop the page's workflows and delete them (their services too), then every process the session started."""
    tf = [str(VENV_BIN / "trainflow")]
    listed = subprocess.run([*tf, "list", "-o", "json"], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    for run in json.loads(listed.stdout or "[]") if listed.returncode == 0 else []:
        name = run["name"]
        subprocess.run([*tf, "stop", name], capture_output=True, env=env, cwd=cwd, timeout=60, check=False)
        subprocess.run([*tf, "delete", name], capture_output=True, env=env, cwd=cwd, timeout=60, check=False)
    try:
        family = psutil.Process(session.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(session.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for proc in family:  # those that left the group (a training worker's own session)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    session.wait(timeout=30)


@pytest.fixture(scope="session")
def pages_moto() -> Iterator[str]:
    """One moto S3 server for the pages this worker runs (one at a time); each page starts from a reset."""
    moto, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        stop(moto)


def _fresh_s3(endpoint: str) -> None:
    """Forget every bucket and object an earlier page made, then make the page's empty `mybucket`."""
    import boto3
    import httpx

    httpx.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys()).create_bucket(Bucket="mybucket")


@pytest.mark.timeout(PAGE_TIMEOUT + 120)
@pytest.mark.parametrize("path", _page_params())
def test_page_runs_as_printed(path: Path, tmp_path: Path, pages_moto: str) -> None:
    runnable = _runnable(path)
    if not SHARED.is_dir() and any("../shared" in b.code for b in runnable):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path.name} needs {SHARED}, which CI must have")
        pytest.skip(f"{path.name} needs {SHARED} (not on this machine)")
    repo, home = _workspace(tmp_path)
    _fresh_s3(pages_moto)
    env = _env(home, pages_moto)
    script = tmp_path / "page.sh"
    script.write_text(_script(runnable, repo))
    log = tmp_path / "page.log"
    with log.open("w") as out:
        session = subprocess.Popen(
            ["bash", str(script)], cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = session.wait(timeout=PAGE_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _clean_up(session, env, repo)
    text = log.read_text()
    failed = re.findall(r"::docs-block (\S+)", text)
    where = failed[-1] if failed else str(path)
    assert code is not None, f"{where}: still running after {PAGE_TIMEOUT} s\n{text[-6000:]}"
    assert code == 0, f"{where}: exit code {code}\n{text[-6000:]}"


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    }
