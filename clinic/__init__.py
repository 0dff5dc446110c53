"""The clinic record: one PostgreSQL database shared by a clinic's treadmills, and the replicator.

``clinic.schema`` owns the server's tables (numbered SQL files in ``migrations/``, each
applied once, in its own transaction); ``clinic.connect`` opens a connection as
``[clinic]`` says. The replicator, a process beside the controller, ships each Pi's
history.db to the server and brings back the clinic's patients. The controller never
imports this package: its safety loop never waits on the network.
"""
