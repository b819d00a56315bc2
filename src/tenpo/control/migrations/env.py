"""Alembic environment: runs on the connection handed over by ``tenpo.control.db``.

There is no ``alembic.ini``: ``tenpo.control.db`` builds the Config in code and passes an
open connection in ``config.attributes["connection"]``, so migrations work from an
installed package and share the caller's transaction and locks.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tenpo.control.models import Base

VERSION_TABLE = "alembic_version_control"


def run_migrations_online() -> None:
    """Upgrade or downgrade on the caller's connection, inside its transaction."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run control-plane migrations through tenpo.control.migrate()")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
    )
    context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
