"""What the cache keeps beside the joblib entries, as items ``info``, ``clear`` and ``prune`` can see.

Four stores live in finder's state folder of the cache (``<cache>/finder``):

* ``frames/<code>.pkl`` — each stock's ready frame for ``get_ohlcv`` hits (``_frames``), one item per file;
* ``panels/<id>/`` — stored dates × codes panels (``_panel``), one item per panel;
* ``index_bars/<code>.npz`` and ``<code>.live.json`` — index bars (``_index_bars``), one item per file;
* ``snapshots/<kind>-<key>.json`` — the day's ranking and quotes (``_snapshots``), one item per file.

Guarantees: each item is listed with its size on disk and when it was last
used (file times), so the public counts are what is on disk; removing an
item is always safe (it is fetched or rebuilt when next asked for).  Lock
files are not items (they hold no data) but their bytes are counted.  Not
guaranteed: a listing is a snapshot; another process may add or remove an
item right after it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .._paths import state_dir

KINDS = ("frames", "panels", "index_bars", "snapshots")
_PANEL_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Item:
    kind: str    # one of KINDS
    path: Path   # a folder (a panel) or a file
    size: int    # bytes on disk
    used: float  # last use (max of atime and mtime; a panel's meta.json is touched on use)


def folder(root: Path, kind: str) -> Path:
    return state_dir(Path(root)) / kind


def tree_bytes(path: Path) -> int:
    """Bytes of the files below ``path`` (links not followed; files that vanish meanwhile count 0)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def items(root: Path, kind: str) -> list[Item]:
    """The data items of one side store (see module doc); an absent folder has none."""
    base = folder(root, kind)
    out: list[Item] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return out
    for e in entries:
        try:
            if kind == "panels":
                if not (e.is_dir(follow_symlinks=False) and _PANEL_ID.match(e.name)):
                    continue
                st = os.stat(os.path.join(e.path, "meta.json"))
                out.append(Item(kind, Path(e.path), tree_bytes(Path(e.path)), max(st.st_atime, st.st_mtime)))
            else:
                if not e.is_file(follow_symlinks=False) or not e.name.endswith((".json", ".npz", ".pkl")):
                    continue
                st = e.stat(follow_symlinks=False)
                out.append(Item(kind, Path(e.path), st.st_size, max(st.st_atime, st.st_mtime)))
        except OSError:
            continue  # removed meanwhile, or a panel without its description (not an item)
    return out


def bytes_on_disk(root: Path) -> int:
    """Every byte of the side stores, lock files included."""
    return sum(tree_bytes(folder(root, k)) for k in KINDS if folder(root, k).is_dir())


def counts(root: Path) -> dict[str, int]:
    return {k: len(items(root, k)) for k in KINDS}


def remove(item: Item) -> bool:
    """Remove one item (a panel under the panel folder's lock); True when it was there."""
    if item.kind == "panels":
        from . import _panel

        return _panel.remove_path(item.path)
    try:
        item.path.unlink()
        return True
    except OSError:
        return False


def clear_all(root: Path) -> int:
    """Remove the side stores; returns how many items they held."""
    n = sum(counts(root).values())
    for k in KINDS:
        shutil.rmtree(folder(root, k), ignore_errors=True)
    from . import _panel

    _panel.forget_folder(folder(root, "panels"))
    return n


def clear_code(root: Path, code: str) -> int:
    """Remove what holds ``code``: its ready frame, the panels with its column and its quote snapshot;
    returns the count."""
    from . import _frames, _panel, _snapshots

    n = int(_frames.remove(state_dir(Path(root)), code))
    for item in items(root, "panels"):
        if code in _panel.codes_of(item.path) and remove(item):
            n += 1
    n += _snapshots.remove_key(root, "ka10095", code)
    return n
