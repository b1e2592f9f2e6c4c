"""rollups: quarter cells beside the months

Revision ID: 0012
Revises: 0011

The dated rollup (patrol cells) keeps each cell's quarters too, at every level, so a year's tile
reads three or four quarters and a few months instead of twelve months (at zoom 13, half the
cells a tile reads). The trigger function is replaced by the one that also keeps quarters, and
the quarters are summed from the month cells already there (each quarter is its three months
exactly: seconds, where rebuilding the cells from the points takes minutes).

The downgrade leaves them: the code of 0011 never asks for a quarter, and the cells it reads
are the same.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from app.services.rollups import function_sql, quarters_sql
    from layers.catalog import PATROLS, PROJECTS

    for layer in (PATROLS, PROJECTS):
        rollup = layer.source.rollup
        if rollup.time is None:  # one bucket per cell: nothing to add
            continue
        op.execute(sa.text(function_sql(layer)))
        op.execute(sa.text(
            f"DELETE FROM {rollup.table} WHERE span = 'q'"))  # a rebuild by 0007 made them
        op.execute(sa.text(quarters_sql(layer)))
        op.execute(sa.text(f"ANALYZE {rollup.table}"))


def downgrade() -> None:
    pass
