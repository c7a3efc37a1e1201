"""Alembic's environment script, run by ``alembic.command`` from ``migrations/__init__.py``.

No alembic.ini: the caller hands over its connection, already inside the transaction that holds the
store's write lock, so the upgrade and the check before it are one unit.
"""

from __future__ import annotations

from alembic import context

from newsletter.store.migrations import VERSION_TABLE
from newsletter.store.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
