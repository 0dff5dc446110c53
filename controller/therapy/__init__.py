"""Therapy: patient profiles, the progression rule and the session runner.

May import ``controller.safety`` (states and event kinds), ``controller.storage``,
``controller.config`` and ``controller.fields``; never hardware.
"""
