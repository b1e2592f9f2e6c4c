"""tile rollups: cells of the projects and patrols layers, counted ahead of time

Revision ID: 0006
Revises: 0005

The aggregated vector tiles of the layers that grow with the city read these cells instead of
the points (``app/services/rollups.py``; the definitions are the layers' ``Rollup`` in
``layers/catalog.py``). Statement triggers on ``projects`` and ``patrols`` keep them; the
upgrade fills them from the rows already there (about a minute per million patrols). A later
change of a rollup's definition is a new migration that drops it and installs it again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _layers():
    from layers.catalog import PATROLS, PROJECTS

    return (PROJECTS, PATROLS)


def upgrade() -> None:
    from app.services.rollups import install_sql

    for layer in _layers():
        for statement in install_sql(layer):
            op.execute(sa.text(statement))


def downgrade() -> None:
    from app.services.rollups import drop_sql

    for layer in reversed(_layers()):
        for statement in drop_sql(layer):
            op.execute(sa.text(statement))
