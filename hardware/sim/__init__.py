"""Simulated hardware for tests and the demo: treadmill on a pty, VL53L0X model, patient."""
