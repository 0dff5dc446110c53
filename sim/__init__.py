"""The whole system on simulated hardware: the bench the tests and benchmarks use, and the demo.

Never runs on the Pi. It sits above ``controller/``, ``web/`` and ``hardware.sim`` (the
device models, which know no controller) and wires them together with gpiozero's
``MockFactory``; nothing in the product imports it.
"""
