"""The dashboard's own state directory: the session secret and the password hash.

Both files hold secrets, so they are created with mode 0600 and written
atomically (a temporary file in the same directory, then a rename or a link),
so a crash mid-write never leaves a half-written key or hash behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"
PASSWORD_FILE = "password"
PRIVATE_MODE = 0o600
#: 32 random bytes as hex: what secrets.token_hex(32) gives.
SECRET_KEY_MIN_CHARS = 64


def ensure_state_dir(state_dir: str | Path) -> Path:
    """Create the state directory (mode 0700) when missing; return it as a Path."""
    path = Path(state_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _write_temp(directory: Path, data: str) -> str:
    """Write ``data`` to a new 0600 file in ``directory``, flushed to disk; return its path."""
    # mkstemp creates the file with mode 0600 already, so the secret is never
    # readable by others, not even for an instant.
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        os.unlink(tmp_path)
        raise
    return tmp_path


def write_private_file(path: Path, data: str) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600."""
    tmp_path = _write_temp(path.parent, data)
    try:
        os.replace(tmp_path, path)
    except OSError:
        os.unlink(tmp_path)
        raise


def create_private_file(path: Path, data: str) -> bool:
    """Create ``path`` atomically with ``data`` (mode 0600) unless it exists; True if created."""
    tmp_path = _write_temp(path.parent, data)
    try:
        # link() fails when the target exists: two processes starting at once
        # both end up with the first one's secret instead of each its own.
        os.link(tmp_path, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp_path)


def tighten_mode(path: Path) -> None:
    """Make a secret file 0600 again if someone loosened it (copied with cp, restored from backup)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != PRIVATE_MODE:
        log.warning("%s had mode %o; setting it to 0600", path, mode)
        os.chmod(path, PRIVATE_MODE)


def load_secret_key(state_dir: str | Path) -> str:
    """The session secret from ``<state_dir>/secret_key``, generated on first use."""
    path = ensure_state_dir(state_dir) / SECRET_KEY_FILE
    if not path.exists():
        create_private_file(path, secrets.token_hex(32))
    tighten_mode(path)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < SECRET_KEY_MIN_CHARS:
        raise ValueError(f"{path}: the secret key is too short ({len(key)} characters, need at least "
                         f"{SECRET_KEY_MIN_CHARS}); delete the file and a new one is generated")
    return key
