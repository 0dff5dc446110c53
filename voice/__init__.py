"""The voice service: short spoken prompts for the patient on the belt.

A client of the controller's Unix socket, like the dashboard, in its own
unprivileged process: it subscribes to the status pushes, decides what to say
(``prompter``, pure), renders each fixed prompt once with espeak-ng (``speech``)
and plays it on the configured ALSA device (``player``), a trip cutting off
whatever was being said. The controller does not know it exists; a missing
engine or sound card is logged, written to a health file (``health``) and shown
by ``treadmill-safety doctor``, never raised.
"""
