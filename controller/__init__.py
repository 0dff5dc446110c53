"""The controller process: config, safety decisions, the control loop, storage, CLI."""
