"""The built-in local provider: real processes, SQLite state, routines, launchers and events."""
