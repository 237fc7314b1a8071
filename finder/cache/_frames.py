"""Ready frames: one file per stock that a warm ``get_ohlcv`` answers from (``finder/frames/<code>.pkl``).

A warm ``get_ohlcv`` hit used to read the stock's pointer (JSON), then a
joblib entry holding the frame's pickle as bytes, then unpickle that: two
file opens and two unpicklings per call.  A ready frame is one pickle of

    (("finder-ready-frame", FORMAT_VERSION), code, anchor, events, reached_start, frame)

at a fixed path per stock: the stock's whole adjusted frame as of its
history's anchor, with what is needed to decide whether a request is a slice
of it.  A hit is one open and one unpickling, like a plain ``pd.read_pickle``.

Guarantees:

* **Self-describing.**  A ready frame never needs the pointer: it is served
  for ``end`` only when ``end`` is on or before its anchor and none of its
  corporate actions lies in ``(end, anchor]`` (then the numbers as of the
  anchor are the numbers as of ``end``).  A file older than the pointer
  (another process committed meanwhile) is therefore still right for what it
  serves; requests it cannot serve take the full path.
* **Written whole.**  Files are replaced atomically (temporary + rename), by
  the commit that writes the pointer (before the pointer) or, when missing or
  damaged, by the next full-path ``get_ohlcv`` of the stock.
* **Checked before unpickled.**  The caller (``Store.frame_fast``) checks the
  folder's safety first, as for every pickle the cache loads.
* **Never aliased.**  The process keeps the file's *bytes* in memory, never
  the frame: every hit unpickles its own frame.

Not guaranteed: live bars (never stored here) and unadjusted frames (served
from the history).  A ready frame of another cache format is a quiet miss
(the stock's pointer is what tells the user about the format).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from .._paths import write_private_file
from . import _memo

KIND = "finder-ready-frame"


class OtherFormat(ValueError):
    """A ready frame written by another cache format (``_memo.FORMAT_VERSION``)."""


def folder(state: Path) -> Path:
    return Path(state) / "frames"


def path(state: Path, code: str) -> str:
    # A string, not a Path: this is on the hot path of every hit.
    return f"{state}{os.sep}frames{os.sep}{code}.pkl"


def dumps(code: str, history) -> bytes:
    """The ready frame of ``history`` (the whole adjusted frame as of its anchor), pickled."""
    frame = history.frame(history.anchor, len(history.dates), True)
    events = tuple(np.datetime64(e, "D") for e in history.events.ex)
    return pickle.dumps(((KIND, _memo.FORMAT_VERSION), code, np.datetime64(history.anchor, "D"), events, bool(history.reached_start), frame),
                        protocol=pickle.HIGHEST_PROTOCOL)


def write(state: Path, code: str, history) -> None:
    """Replace the stock's ready frame (atomically).  Raises OSError when the folder refuses."""
    write_private_file(Path(path(state, code)), dumps(code, history))


def read(state: Path, code: str) -> bytes | None:
    """The stock's ready-frame bytes, or None when there is none."""
    try:
        with open(path(state, code), "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def remove(state: Path, code: str) -> bool:
    try:
        os.unlink(path(state, code))
        return True
    except FileNotFoundError:
        return False
    except OSError:  # cannot be removed (a read-only folder): it stays a miss
        return False


def loads(code: str, blob: bytes) -> tuple[np.datetime64, tuple, bool, pd.DataFrame]:
    """(anchor, events, reached_start, frame) of a ready frame.

    Raises ``OtherFormat`` for one of another cache format, ValueError (or
    whatever unpickling raises) when it is not a ready frame of ``code``.
    """
    value = pickle.loads(blob)
    if not isinstance(value, tuple) or len(value) != 6 or not isinstance(value[0], tuple) or value[0][:1] != (KIND,):
        raise ValueError("not a ready frame")
    if value[0] != (KIND, _memo.FORMAT_VERSION):
        raise OtherFormat(f"ready frame of format {value[0][1:]!r}")
    if value[1] != code or not isinstance(value[5], pd.DataFrame):
        raise ValueError("not a ready frame of this stock")
    return value[2], value[3], value[4], value[5]
