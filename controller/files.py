"""Files that a crash leaves whole: the one atomic writer of both processes.

A new file is written beside the target (created 0600 by ``mkstemp``, so a secret is
never readable by others, not even for an instant), flushed and fsynced, then put in
place with ``os.replace`` or ``os.link``; the directory is fsynced so the rename itself
survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _write_temp(directory: Path, prefix: str, text: str, mode: int) -> str:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text``: a crash leaves either the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path.parent, f".{path.name}.", text, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def create_text_once(path: Path, text: str, mode: int = 0o600) -> bool:
    """Create ``path`` with ``text`` unless it exists; True if this call created it.

    ``link`` fails when the target exists, so two processes starting at once both end up
    with the first one's content instead of each its own.
    """
    tmp = _write_temp(path.parent, f".{path.name}.", text, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    _fsync_dir(path.parent)
    return True
