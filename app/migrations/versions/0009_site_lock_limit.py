"""grid_days: a bulk write of visits locks the table instead of one advisory lock per site

Revision ID: 0009
Revises: 0008

The trigger on ``patrol_visits`` took an advisory lock per site it credited, held to the end
of the transaction. An import of a year of visits to 50,000 sites in one transaction asked for
50,000 locks and failed with "out of shared memory" (the server's lock table holds
``max_locks_per_transaction`` × connections, 6,400 by default). Now a transaction takes per-site
locks up to ``SITE_LOCK_LIMIT`` and locks the table past it (see ``app/services/grid_days.py``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from app.services.grid_days import visits_function_sql

    op.execute(sa.text(visits_function_sql()))


def downgrade() -> None:
    from app.services.grid_days import visits_function_sql

    op.execute(sa.text(visits_function_sql(site_lock_limit=None)))
