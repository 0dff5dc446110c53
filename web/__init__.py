"""The therapist's dashboard: a Flask client of the controller's IPC socket."""
