"""What preparing a dataset imports, loaded on a thread while a sync copies and hashes its files."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

# numpy and the array builders (~0.1 s of CPU), for every format; a table's readers by its suffix (pyarrow: ~0.2 s).
_ALWAYS = ("trainflow.datasets.prepare",)
_READERS = {  # numpy.random: a single table's held-out rows are drawn with it
    ".csv": ("trainflow.datasets.tables", "numpy.random"),
    ".parquet": ("trainflow.datasets.tables", "pyarrow.parquet", "numpy.random"),
}


def load_readers(names: Iterable[str]) -> threading.Thread:
    """A started thread importing the modules that preparing these files will need.

    A sync starts it before it copies and hashes the files, which wait on the disk and on hashlib with the GIL
    released, so the imports run beside them instead of before or after; join it before `prepare`. A failed
    import is left to `prepare`, which imports the same modules and says what went wrong.
    """
    wanted = dict.fromkeys(_ALWAYS)
    for name in names:
        wanted |= dict.fromkeys(_READERS.get(name[name.rfind(".") :].lower(), ()))

    def load() -> None:
        for module in wanted:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - prepare imports it again and reports the error
                return

    thread = threading.Thread(target=load, name="trainflow-load-readers", daemon=True)
    thread.start()
    return thread
