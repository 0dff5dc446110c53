"""The dashboard's own state directory: the session secret, and the accounts and audit trail.

Both hold secrets and are mode 0600: the secret is written by the one atomic
writer of both processes (controller/files.py), so a crash mid-write never
leaves a half-written key behind, nor one readable by others; ``access.db``
(web/accounts.py) is SQLite's, created 0600 before its first byte.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from controller.files import create_text_once

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"
PRIVATE_MODE = 0o600
#: 32 random bytes as hex: what secrets.token_hex(32) gives.
SECRET_KEY_MIN_CHARS = 64


def ensure_state_dir(state_dir: str | Path) -> Path:
    """Create the state directory (mode 0700) when missing; return it as a Path."""
    path = Path(state_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


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
        # Created once, by link: two dashboards starting at once both end up with the first one's secret.
        create_text_once(path, secrets.token_hex(32), mode=PRIVATE_MODE)
    tighten_mode(path)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < SECRET_KEY_MIN_CHARS:
        raise ValueError(f"{path}: the secret key is too short ({len(key)} characters, need at least "
                         f"{SECRET_KEY_MIN_CHARS}); delete the file and a new one is generated")
    return key
