"""patrols: stored longitude and latitude, carried by the (district, day) index

Revision ID: 0010
Revises: 0009

An aggregated tile of a period that the rollup's buckets do not hold (a week; the edge days of
a 365-day period at street zoom) reads the district's points of those days from the
(district, day) B-tree and keeps those near the tile. With the coordinates in the index
(``INCLUDE``, with the street code a scope filters on) that read never visits the table: 49,000
points of nine days in 8 ms instead of 21 ms. The upgrade rewrites the table (about 8 s per
million patrols).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('patrols', sa.Column('lon', sa.Float(), sa.Computed('ST_X(location)',
                                                                       persisted=True)))
    op.add_column('patrols', sa.Column('lat', sa.Float(), sa.Computed('ST_Y(location)',
                                                                       persisted=True)))
    op.drop_index('ix_patrols_district_code_patrol_on', table_name='patrols')
    op.create_index('ix_patrols_district_code_patrol_on', 'patrols',
                    ['district_code', 'patrol_on'], unique=False,
                    postgresql_include=['street_code', 'lon', 'lat'])
    op.execute(sa.text('ANALYZE patrols'))


def downgrade() -> None:
    op.drop_index('ix_patrols_district_code_patrol_on', table_name='patrols')
    op.drop_column('patrols', 'lat')
    op.drop_column('patrols', 'lon')
    op.create_index('ix_patrols_district_code_patrol_on', 'patrols',
                    ['district_code', 'patrol_on'], unique=False)
