"""Alembic revision scripts of the control plane, oldest first."""
