"""grid_days: patrol points, visits and site-days per grid and day; a covering projects index

Revision ID: 0008
Revises: 0007

Blind spots over a window read these rows (at most days × grids, one index range) instead of
every visit of the window; triggers on patrols, patrol_visits and projects keep them (see
``app/services/grid_days.py``), and the upgrade fills them from the tables there (about ten
seconds per million patrols). The index of projects by district and state now carries the
columns a site's due day and its grid are computed from, so the per-grid count of active and
overdue sites is an index-only scan.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COVERED = ['grid_code', 'high_risk', 'started_on', 'briefed_on', 'accepted_on', 'submitted_on',
            'id']


def upgrade() -> None:
    from app.services.grid_days import install_sql

    for statement in install_sql():
        op.execute(sa.text(statement))
    op.drop_index('ix_projects_district_code_state', table_name='projects')
    op.create_index('ix_projects_district_code_state', 'projects', ['district_code', 'state'],
                    unique=False, postgresql_include=_COVERED)


def downgrade() -> None:
    from app.services.grid_days import drop_sql

    op.drop_index('ix_projects_district_code_state', table_name='projects')
    op.create_index('ix_projects_district_code_state', 'projects', ['district_code', 'state'],
                    unique=False)
    for statement in drop_sql():
        op.execute(sa.text(statement))
