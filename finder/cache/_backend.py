"""The one seam between finder and joblib's storage: entries by id, load, dump, clear.

joblib.Memory has two halves (see joblib's ``memory.py``): memoized functions,
and a *store backend* with ``load_item`` / ``dump_item`` / ``clear_item``.
finder registers its own backend (a subclass of joblib's file-system one) so
that:

* a failed write or a failed load is *recorded* for the calling thread instead
  of being announced through ``warnings`` (joblib's way), so finder never has
  to touch the process-global warning filters to notice it;
* the few joblib internals finder relies on (an entry's id, its path on disk,
  a fast load of a bytes result) live here and nowhere else.

Guarantees: nothing in this module changes the process's warning filters;
``Outcome`` is per thread.  Not guaranteed: compatibility with joblib's
layout beyond the ``joblib>=1.4`` this project pins (the layout is
``<root>/joblib/<module path>/<func>/<args id>/output.pkl``).
"""

from __future__ import annotations

import os
import pickle
import threading
from typing import Any

from joblib import register_store_backend
from joblib._store_backends import FileSystemStoreBackend

BACKEND = "finder"


class Outcome(threading.local):
    """What happened to the storage during the current thread's memoized call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.store_error: str | None = None
        self.load_error: str | None = None


outcome = Outcome()


class FinderStoreBackend(FileSystemStoreBackend):
    """joblib's file-system backend, reporting trouble through :data:`outcome` instead of warnings."""

    def load_item(self, call_id, verbose=1, timestamp=None, metadata=None):
        try:
            return super().load_item(call_id, verbose=verbose, timestamp=timestamp, metadata=metadata)
        except Exception as exc:
            # joblib logs it and recomputes; we remember it to warn once and repair.
            outcome.load_error = f"{type(exc).__name__}: {exc}"
            raise

    def dump_item(self, call_id, item, verbose=1):
        try:
            item_path = os.path.join(self.location, *call_id)
            if not self._item_exists(item_path):
                self.create_location(item_path)
            filename = os.path.join(item_path, "output.pkl")

            def write_func(to_write, dest_filename):
                from joblib import numpy_pickle

                with self._open_item(dest_filename, "wb") as f:
                    numpy_pickle.dump(to_write, f, compress=self.compress)

            self._concurrency_safe_write(item, filename, write_func)
        except Exception as exc:  # a full or read-only disk, or a folder removed mid-write (a race)
            outcome.store_error = f"{type(exc).__name__}: {exc}"


register_store_backend(BACKEND, FinderStoreBackend)


def memory(location: str | None):
    """A joblib.Memory on finder's backend (``location=None``: nothing stored)."""
    import joblib

    if location is None:
        return joblib.Memory(location=None, verbose=0)
    return joblib.Memory(location=location, backend=BACKEND, verbose=0)


def entry_id(func, *args) -> tuple[str, str]:
    """The (function id, argument hash) joblib files a call under."""
    return func.func_id, func._get_args_id(*args)


def entry_path(memory, call_id: tuple[str, str]) -> str:
    return os.path.join(memory.store_backend.location, *call_id[0].split("/"), call_id[1])


def read_bytes_result(memory, call_id: tuple[str, str]) -> Any:
    """The stored result of an entry whose result is a ``bytes`` object, with the C unpickler.

    joblib writes a bytes result as a plain pickle stream (its array wrappers
    only appear for numpy arrays), so ``pickle.load`` reads it several times
    faster than joblib's own loader; anything unexpected goes through that
    loader.  A missing entry raises ``KeyError``.
    """
    path = os.path.join(entry_path(memory, call_id), "output.pkl")
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        raise KeyError(call_id) from None
    except Exception:
        try:
            return memory.store_backend.load_item(list(call_id), verbose=0)
        except FileNotFoundError:  # removed between our open and joblib's (a prune, a compaction)
            raise KeyError(call_id) from None


def clear(memory, call_id: tuple[str, str]) -> None:
    """Remove one entry; a missing one is not an error (another process may have removed it)."""
    try:
        memory.store_backend.clear_item(list(call_id))
    except OSError:  # already gone, or removed by another process as we walked it
        pass


def metadata(memory, call_id: tuple[str, str]) -> dict:
    return memory.store_backend.get_metadata(list(call_id))
