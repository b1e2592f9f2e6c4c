"""rollups: the patrol cells of zoom 19 keep the 旬 too

Revision ID: 0014
Revises: 0013

The fine levels of the patrol cells (zoom 19–22, for the tiles of zoom 13–16 of long periods)
kept months and quarters only, so a period that is not whole months counted its edge days from
the points. A zoom-13 tile of the last 365 days is the worst of it: the 23 days of the first
month's remainder are 30,000 points in the busiest tile. Level 19 (those tiles' cells) now keeps
the ten-day periods (旬) as well: the edges are then at most the 18 days around whole 旬 (two
days of points, that tile: 2,600). It adds about 550,000 cells to 4.6 million (2,000,000
patrols) and one cell row per patrol to an upload's trigger work. The trigger function is
replaced and the 旬 cells of level 19 are counted from the patrols.

The downgrade deletes them and puts back the function without them.
"""

from collections.abc import Sequence
from dataclasses import replace

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVEL = 19


def upgrade() -> None:
    from app.services.rollups import SPAN_DEKAD, function_sql, span_cells_sql
    from layers.catalog import PATROLS

    op.execute(sa.text(function_sql(PATROLS)))
    for statement in span_cells_sql(PATROLS, LEVEL, SPAN_DEKAD):
        op.execute(sa.text(statement))
    op.execute(sa.text(f"ANALYZE {PATROLS.source.rollup.table}"))


def downgrade() -> None:
    from app.services.rollups import SPAN_DEKAD, function_sql
    from layers.catalog import PATROLS

    source = PATROLS.source
    before = replace(PATROLS, source=replace(source, rollup=replace(source.rollup,
                                                                     dekads_to=None)))
    op.execute(sa.text(function_sql(before)))
    op.execute(sa.text(f"DELETE FROM {source.rollup.table} "
                       f"WHERE level = {LEVEL} AND span = '{SPAN_DEKAD}'"))
