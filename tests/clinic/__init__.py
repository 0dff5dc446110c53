"""Tests of the clinic record against a real, throw-away PostgreSQL server (sim/postgres.py)."""
