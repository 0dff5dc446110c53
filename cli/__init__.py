"""The ``treadmill-safety`` command: above both processes, so it may import the controller,
the dashboard and the simulation; nothing imports it."""
