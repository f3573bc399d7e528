"""The root of every error trainflow raises on purpose.

Each layer subclasses `TrainflowError` once; the message is what the user reads (what failed and
what to do), and `exit_code` is what the CLI exits with. Codes 1-127 are permanent errors (the
operators' `ExitCode` restart policy fails the job), 128 and above are transient (the pod is
recreated). The README's exit-code table lists them all.
"""

import re

PERMANENT_EXIT_CODE = 2
TRANSIENT_EXIT_CODE = 143
# sysexits' EX_UNAVAILABLE: nothing answered at the address a command was given (143 reads as SIGTERM in a shell).
UNREACHABLE_EXIT_CODE = 69


# Control characters and line separators, which a message quoting the user's input could carry.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with control characters and line breaks written as escapes (`\\n`): one line, whatever it quotes."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group(0))[1:-1], text)


class TrainflowError(Exception):
    """An error whose message is meant for the user: always one line (a quoted newline is shown as \\n)."""

    exit_code: int = PERMANENT_EXIT_CODE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(one_line(message))
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)
