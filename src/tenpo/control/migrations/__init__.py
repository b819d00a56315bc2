"""Alembic migrations of the control-plane database (run through ``tenpo.control.migrate``)."""
