"""The code blocks of the docs pages and the README, and what the docs test does with each.

A fence's language says whether it runs: ```bash (or sh/shell) and ```python blocks run; ```console,
```text, ```yaml, ```json and the other listed languages are shown, never run. The line right before a
runnable fence may be `<!-- docs-test: skip REASON -->` (REASON required: why it cannot run here, e.g.
it needs a cluster or the internet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
SHOWN = {"console", "text", "yaml", "json", "toml", "ini", "mermaid", "proto", "dockerfile", "html", "csv", "diff"}
_FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>```+)(?P<lang>[\w+-]*)\s*(?:\{.*\})?\s*$")
_SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')  # pymdownx.snippets: the file, included at build
_SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip(?P<reason>.*?)-->\s*$")
TRAINS = re.compile(r"\btrainflow (run|train|submit|resubmit|retry)\b|\bpytest\b")  # a page with such a block is slow


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None  # the reason, when the line before the fence marks it; "" when marked without one

    @property
    def kind(self) -> str:
        """bash, python, shown, or unknown (a fence with no language, or one this test does not know)."""
        if self.lang in RUNNABLE:
            return RUNNABLE[self.lang]
        return "shown" if self.lang in SHOWN else "unknown"

    @property
    def runs(self) -> bool:
        return self.kind in ("bash", "python") and self.skip is None

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """Every page the site builds, and the README."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, ticks = len(opening["indent"]), opening["ticks"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != ticks:
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        marker = _SKIP.match(lines[i - 1]) if i > 0 else None
        skip = marker["reason"].strip() if marker else None
        page = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        code = "".join(_included(line) for line in body)
        found.append(Block(page, i + 1, opening["lang"].lower(), code, skip))
        i = j + 1
    return found


def _included(line: str) -> str:
    """A line of a block as the reader sees it: a snippet line becomes the file it includes."""
    snippet = _SNIPPET.match(line)
    return (ROOT / snippet["path"]).read_text() if snippet else line + "\n"
