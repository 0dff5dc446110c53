"""The installer's hardware self-test (``treadmill-safety doctor``): one PASS/FAIL line per check.

Runs instead of the controller, never beside it; it opens the real drivers in
``hardware/`` the way ``controller.assembly`` does.
"""
