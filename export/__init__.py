"""The export stage's entry point: ``python -m export --flagfile=configs/<config>.flags``."""
