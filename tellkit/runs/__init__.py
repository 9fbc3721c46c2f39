"""A run folder: its state machine (rundir.py), reading a finished run (source.py) and loading its
model with the adapter merged in (loader.py)."""
