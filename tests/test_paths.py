"""The cache folder's safety check (finder._paths.unsafe_reason) and a fresh clone under umask 002.

Issue 10 item 6: under umask 002 (Ubuntu's user-private groups) a fresh
clone's ``cache_dir/`` is 0775 and must work; a folder that other users can
write, or that another user owns, must still be refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from finder import _paths

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX modes")


def _fake_accounts(monkeypatch, members: list[str], other_primary: bool) -> None:
    """Fake grp/pwd for the unit test of _private_group (no real accounts are created)."""
    uid = os.getuid()
    me = types.SimpleNamespace(pw_name="me", pw_uid=uid, pw_gid=4242)
    other = types.SimpleNamespace(pw_name="other", pw_uid=uid + 1, pw_gid=4242 if other_primary else 9999)
    pwd = types.SimpleNamespace(getpwuid=lambda u: me, getpwall=lambda: [me, other])
    grp = types.SimpleNamespace(getgrgid=lambda g: types.SimpleNamespace(gr_mem=list(members)))
    monkeypatch.setitem(sys.modules, "pwd", pwd)
    monkeypatch.setitem(sys.modules, "grp", grp)


def test_a_user_private_group_is_private_and_a_shared_one_is_not(monkeypatch):
    _fake_accounts(monkeypatch, [], other_primary=False)
    assert _paths._private_group(4242, os.getuid())
    _fake_accounts(monkeypatch, ["me"], other_primary=False)
    assert _paths._private_group(4242, os.getuid())
    _fake_accounts(monkeypatch, ["me", "other"], other_primary=False)
    assert not _paths._private_group(4242, os.getuid())
    _fake_accounts(monkeypatch, [], other_primary=True)  # another user's primary group
    assert not _paths._private_group(4242, os.getuid())


def test_group_writable_folder_is_safe_only_for_a_private_group(tmp_path, monkeypatch):
    folder = tmp_path / "cache_dir"
    folder.mkdir()
    os.chmod(folder, 0o775)
    monkeypatch.setattr(_paths, "_private_group", lambda gid, uid: True)
    assert _paths.unsafe_reason(folder) is None
    monkeypatch.setattr(_paths, "_private_group", lambda gid, uid: False)
    assert "writable by group" in _paths.unsafe_reason(folder)
    os.chmod(folder, 0o757)
    assert "writable by others" in _paths.unsafe_reason(folder)
    os.chmod(folder, 0o777)
    assert "writable by group and others" in _paths.unsafe_reason(folder)
    os.chmod(folder, 0o700)
    assert _paths.unsafe_reason(folder) is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a folder away")
def test_a_folder_another_user_owns_is_refused(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 54321, -1)
    assert "owned by another user" in _paths.unsafe_reason(folder)


def test_the_readme_command_works_in_a_fresh_folder_under_umask_002(tmp_path):
    """`finder ohlcv` (built-in simulator) on a cache folder created under umask 002, as a fresh clone's is."""
    script = (
        "import os, subprocess, sys\n"
        "os.umask(0o002)\n"
        "os.mkdir(sys.argv[1])\n"
        "r = subprocess.run([sys.argv[2], '-m', 'finder.cli', 'ohlcv', '005930', '--count', '5', "
        "'--date', '2025-10-01'], capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); sys.exit(r.returncode)\n"
    )
    folder = tmp_path / "clone" / "cache_dir"
    folder.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIWOOM_", "FINDER_"))}
    env.update({"FINDER_CACHE_DIR": str(folder), "FINDER_NOW": "2025-11-28T20:30:00+09:00"})
    proc = subprocess.run([sys.executable, "-c", script, str(folder), sys.executable], env=env,
                          capture_output=True, text=True, timeout=300, cwd=str(Path(__file__).resolve().parents[1]))
    mode = os.stat(folder).st_mode & 0o777
    assert mode == 0o775, oct(mode)
    if not _paths._private_group(os.stat(folder).st_gid, os.getuid()):
        # a shared primary group: refusing is the right answer here
        assert proc.returncode != 0 and "writable by group" in proc.stderr, proc.stderr[-2000:]
        pytest.skip("this machine's primary group is shared, so a 0775 folder is rightly refused")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "005930" in proc.stdout or len(proc.stdout.strip().splitlines()) >= 5, proc.stdout
