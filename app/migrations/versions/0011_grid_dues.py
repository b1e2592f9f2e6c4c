"""grid_dues: sites per grid, state, risk and the day their visits are due from

Revision ID: 0011
Revises: 0010

Blind spots count each grid's active and overdue sites from these rows (one index range of a
district) instead of joining every active site to its visit summary on each request; triggers
on projects and project_visit_summary keep them (see ``app/services/grid_dues.py``), and the
upgrade fills them from the tables there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from app.services.grid_dues import install_sql

    for statement in install_sql():
        op.execute(sa.text(statement))


def downgrade() -> None:
    from app.services.grid_dues import drop_sql

    for statement in drop_sql():
        op.execute(sa.text(statement))
