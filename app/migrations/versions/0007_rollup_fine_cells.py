"""rollups: month cells of zoom 19-22 for the patrols, empty cells deleted

Revision ID: 0007
Revises: 0006

The patrol cells gain the levels 19-22, months only, so that the tiles of zoom 13-16 of a long
period (a year of patrols at street zoom) are read from cells, and both rollups' triggers now
delete a cell brought to zero instead of keeping it with ``n = 0``. Both rollups are dropped
and installed again from their definitions in ``layers/catalog.py`` (the install fills them
from the rows there: about two minutes per million patrols).

The downgrade leaves them as they are: the code of 0006 reads the levels it knows and ignores
the others, and has no use for empty cells.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from app.services.rollups import drop_sql, install_sql
    from layers.catalog import PATROLS, PROJECTS

    for layer in (PROJECTS, PATROLS):
        for statement in [*drop_sql(layer), *install_sql(layer)]:
            op.execute(sa.text(statement))


def downgrade() -> None:
    pass
