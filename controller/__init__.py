"""The controller process: it owns all hardware and all state.

Layers, each importing only those listed before it:
- ``fields``, ``config``: the config and the checked-field rules every layer uses;
- ``certificate``: the dashboard's TLS certificate and key, read once for the doctor and
  for ``web/tls.py`` (names, expiry, fingerprint, whether they load);
- ``safety/``: the pure safety decisions (no I/O);
- ``storage/``: the history database, saved settings and export;
- ``therapy/``: patients, progression and the session runner;
- ``loop``, ``ipc``, ``notify``, ``service``, ``assembly``: the runtime; only ``assembly``
  (the composition root) wires ``hardware/`` drivers to the loop;
- ``doctor/``: the installer's hardware self-test.

It never imports ``web/``, the simulation (``sim/``) or ``tests/``.
"""
