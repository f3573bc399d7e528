"""Hooks a sync calls to report progress; the CLI turns them into a progress bar."""


class SyncObserver:
    """No-op by default; override what you display."""

    def planned(self, files: int, total_bytes: int) -> None:
        """Called once, before any download, with what is about to be fetched."""

    def bytes_done(self, n: int) -> None:
        """Called from download threads as bytes arrive."""

    def file_done(self, name: str) -> None:
        """Called when one file is complete and in place."""
