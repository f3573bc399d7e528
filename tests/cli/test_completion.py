"""Shell completion as the docs print it: click's script for bash, zsh and fish, completing commands and options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _source(shell: str) -> str:
    out = subprocess.run(
        [str(BIN / "trainflow")],
        capture_output=True,
        text=True,
        env={**os.environ, "_TRAINFLOW_COMPLETE": f"{shell}_source"},
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize(
    ("shell", "opening"),
    [("bash", "_trainflow_completion()"), ("zsh", "#compdef trainflow"), ("fish", "function _trainflow_completion")],
)
def test_each_shell_gets_a_completion_script(shell: str, opening: str) -> None:
    assert opening in _source(shell)


def _bash_completes(tmp_path: Path, *words: str) -> list[str]:
    """What bash offers after sourcing the script, for the command line `words` (the last one being typed)."""
    script = tmp_path / "trainflow-complete.bash"
    script.write_text(_source("bash"))
    line = " ".join(words)
    probe = (
        f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        '_trainflow_completion trainflow; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_command_names_and_options(tmp_path: Path) -> None:
    assert _bash_completes(tmp_path, "trainflow", "sub") == ["submit"]
    offered = _bash_completes(tmp_path, "trainflow", "")
    assert {"run", "train", "serve", "predict", "submit", "ui"} <= set(offered), offered
    assert "workflow-runner" not in offered  # internal commands are hidden
    assert "--model" in _bash_completes(tmp_path, "trainflow", "train", "--mo")
