"""Storage: the history database (one writer thread), saved settings and export.

May import ``controller.safety.types`` (event kinds), ``controller.config`` and
``controller.fields``; never hardware, and nothing of it runs on the decision thread.
"""
