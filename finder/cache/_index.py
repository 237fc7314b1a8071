"""The pointer index: per stock, which history entry is current (``finder/index/<code>.json``).

A pointer is a small JSON file replaced atomically (write a temporary, then
rename), so a reader sees the old pointer or the new one, never half of one.
It records the history's spec (the walks it is built from), joblib's id of
the history entry (for a hash-free load), and a summary (anchor, first row,
row count, actions) that lets callers decide coverage without loading
anything, plus the history's last ``TAIL`` bars adjusted as of its anchor
(``tail``), from which a stored panel is carried forward a session without
loading the history (``_panel.extend``).

Also here: the "no such stock" markers (``finder/unknown/<code>.json``): a
code the server called unknown is remembered until the next session, as a
marker and never as an empty frame.

Guarantees: a pointer is only written after the entry it names was stored;
an unreadable pointer or one of another format reads as None (a miss), with
one warning.  Not guaranteed: that the entry a pointer names still exists (a
prune may have removed it; loading it is then a miss).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from .._paths import write_private_file
from ._plan import Spec, spec_of


TAIL = 5  # bars kept in the pointer: enough to carry a panel over a few missed sessions


class PointerIndex:
    def __init__(self, state: Path, version: int, warn_once: Callable[[str, str], None]) -> None:
        self.folder = state / "index"
        self.unknown_folder = state / "unknown"
        self.version = version
        self.warn_once = warn_once

    def path(self, code: str) -> Path:
        return self.folder / f"{code}.json"

    def read(self, code: str) -> dict | None:
        return self.read_stamped(code)[0]

    def read_stamped(self, code: str) -> tuple[dict | None, list[int] | None]:
        """The pointer and the identity of the file it was read from (``_panel.signature``'s form), or
        (None, None) when there is none or it is unusable (damage or another format: one warning).

        Both come from one open file, so the identity is that of the content read
        even when another process replaces the pointer meanwhile.
        """
        fd = -1
        try:
            fd = os.open(f"{self.folder}{os.sep}{code}.json", os.O_RDONLY)  # a string: this runs per stock
            st = os.fstat(fd)
            with os.fdopen(fd, "rb") as fh:
                fd = -1
                data = json.loads(fh.read())
        except FileNotFoundError:
            return None, None
        except (ValueError, OSError) as exc:  # pointers are replaced atomically: this is damage, not a race
            self.warn_once(f"pointer:{code}", f"unreadable cache index entry for {code} ({type(exc).__name__}); "
                                              "rebuilding it")
            return None, None
        finally:
            if fd >= 0:
                os.close(fd)
        if not isinstance(data, dict) or data.get("version") != self.version:
            self.warn_once("format", f"the cache holds entries of another cache format (version "
                                     f"{data.get('version') if isinstance(data, dict) else '?'!r}, this finder "
                                     f"writes {self.version}); they are ignored and rebuilt as asked for")
            return None, None
        return data, [st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size]

    @staticmethod
    def spec(pointer: dict) -> Spec:
        return spec_of(pointer["spec"])

    def write(self, code: str, spec: Spec, history, entry: str | None) -> None:
        data = {
            "version": self.version,
            "code": code,
            "spec": [list(s) for s in spec],
            "entry": entry,  # joblib's id of the history entry, for a hash-free load
            "events": [str(e) for e in history.events.ex],
            "anchor": str(history.anchor),
            "first": str(history.first) if history.first is not None else None,
            "rows": int(len(history.dates)),
            "reached_start": history.reached_start,
            "tail": _tail(history),
        }
        write_private_file(self.path(code), json.dumps(data).encode())

    def remove(self, code: str) -> bool:
        try:
            self.path(code).unlink()
            return True
        except FileNotFoundError:
            return False

    def codes(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []

    # -- "no such stock" markers ------------------------------------------------
    def unknown_path(self, code: str) -> Path:
        return self.unknown_folder / f"{code}.json"

    def mark_unknown(self, code: str, session: str, message: str) -> None:
        write_private_file(self.unknown_path(code), json.dumps(
            {"version": self.version, "code": code, "session": session, "message": message}).encode())

    def unknown(self, code: str, session: str) -> str | None:
        """The server's message when ``code`` was called unknown during ``session``, else None."""
        try:
            data = json.loads(self.unknown_path(code).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != self.version or data.get("session") != session:
            return None
        return str(data.get("message", ""))

    def forget_unknown(self, code: str) -> None:
        try:
            self.unknown_path(code).unlink()
        except FileNotFoundError:
            pass


def _tail(history) -> dict:
    """The last ``TAIL`` bars as of the anchor: dates and [open, high, low, close, volume, value] rows."""
    n = min(TAIL, len(history.dates))
    if n == 0:
        return {"dates": [], "bars": []}
    adj, vol, val = history.adj[-n:], history.adj_volume[-n:], history.value[-n:]
    return {"dates": [str(d) for d in history.dates[-n:]],
            "bars": [[float(a[0]), float(a[1]), float(a[2]), float(a[3]), int(v), int(x)]
                     for a, v, x in zip(adj, vol, val)]}
