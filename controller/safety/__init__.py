"""The safety decisions: states, inputs, the latched core and its command rules.

Pure: it imports only ``controller.config`` and ``controller.fields``, does no I/O and
reads no clock of its own (every call carries ``now``). The loop feeds it; the
composition root wires it to hardware. This is the code that decides the relay.
"""
