"""registrations: projects, special places, estates, the working-day calendar

Revision ID: 0002
Revises: 0001

The calendar is seeded with the holidays and adjusted working days that the ``chinesecalendar``
package knows at migration time; later years are added by an official (``xiaosan calendar set``,
``PUT /api/calendar/days``) or by ``xiaosan calendar seed`` after upgrading the package.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Nothing is deleted (the loop ends in closed, refused, revoked or expired; never in a DELETE).
NO_DELETE = """
CREATE FUNCTION projects_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'projects are never deleted: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER projects_no_delete BEFORE DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION projects_no_delete();
CREATE TRIGGER projects_no_truncate BEFORE TRUNCATE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION projects_no_delete();
"""


def _seed_calendar() -> None:
    from importlib.metadata import version

    from chinese_calendar import constants

    source = f"chinesecalendar {version('chinesecalendar')}"
    rows = [{"day": d, "is_workday": False, "name": str(n), "source": source,
             "updated_by": "migration 0002"} for d, n in constants.holidays.items()]
    rows += [{"day": d, "is_workday": True, "name": f"{n} 调休上班", "source": source,
              "updated_by": "migration 0002"} for d, n in constants.workdays.items()]
    table = sa.table("calendar_days", sa.column("day", sa.Date), sa.column("is_workday", sa.Boolean),
                     sa.column("name", sa.String), sa.column("source", sa.String),
                     sa.column("updated_by", sa.String))
    op.bulk_insert(table, sorted(rows, key=lambda r: r["day"]))


def upgrade() -> None:
    op.create_table('calendar_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('is_workday', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_calendar_days'))
    )
    op.create_geospatial_table('estates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('property_company', sa.String(length=200), nullable=False),
    sa.Column('property_phone', sa.String(length=40), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('synthetic', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_estates'))
    )
    op.create_index('ix_estates_district_code', 'estates', ['district_code'], unique=False)
    op.create_geospatial_index('ix_estates_geom', 'estates', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reg_no', sa.String(length=32), nullable=False),
    sa.Column('public_id', sa.String(length=24), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('street_code', sa.String(length=24), nullable=False),
    sa.Column('street_name', sa.String(length=200), nullable=False),
    sa.Column('community_code', sa.String(length=24), nullable=False),
    sa.Column('community_name', sa.String(length=200), nullable=False),
    sa.Column('grid_code', sa.String(length=24), nullable=False),
    sa.Column('grid_name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('site', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('site_input_crs', sa.String(length=16), nullable=False),
    sa.Column('builder', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('contractor', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('investment_cny', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('floor_area_m2', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('planned_start', sa.Date(), nullable=False),
    sa.Column('planned_end', sa.Date(), nullable=False),
    sa.Column('risk_factors', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('public_area', sa.Boolean(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('above_limit_reference', sa.Boolean(), nullable=False),
    sa.Column('above_limit', sa.Boolean(), nullable=False),
    sa.Column('high_risk', sa.Boolean(), nullable=False),
    sa.Column('special_area', sa.Boolean(), nullable=False),
    sa.Column('reviewer_kind', sa.String(length=32), nullable=False),
    sa.Column('reviewer_code', sa.String(length=40), nullable=False),
    sa.Column('reviewer_name', sa.String(length=200), nullable=False),
    sa.Column('departments', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('decision', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('submitted_on', sa.Date(), nullable=False),
    sa.Column('review_due', sa.Date(), nullable=False),
    sa.Column('accepted_on', sa.Date(), nullable=True),
    sa.Column('briefing_due', sa.Date(), nullable=True),
    sa.Column('briefed_on', sa.Date(), nullable=True),
    sa.Column('started_on', sa.Date(), nullable=True),
    sa.Column('completion_due', sa.Date(), nullable=True),
    sa.Column('finished_on', sa.Date(), nullable=True),
    sa.Column('completion_declared_on', sa.Date(), nullable=True),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('extensions', sa.SmallInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('receipt_no', sa.String(length=40), nullable=True),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('public_id', name=op.f('uq_projects_public_id')),
    sa.UniqueConstraint('reg_no', name=op.f('uq_projects_reg_no'))
    )
    op.create_index('ix_projects_community_code', 'projects', ['community_code'], unique=False)
    op.create_index('ix_projects_district_code_state', 'projects', ['district_code', 'state'], unique=False)
    op.create_index('ix_projects_grid_code', 'projects', ['grid_code'], unique=False)
    op.create_geospatial_index('ix_projects_site', 'projects', ['site'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_projects_source', 'projects', ['source'], unique=False)
    op.create_index('ix_projects_street_code', 'projects', ['street_code'], unique=False)
    op.create_index('ix_projects_submitted_on', 'projects', ['submitted_on'], unique=False)
    op.create_geospatial_table('special_places',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('geom', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('synthetic', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_special_places'))
    )
    op.create_index('ix_special_places_district_code', 'special_places', ['district_code'], unique=False)
    op.create_geospatial_index('ix_special_places_geom', 'special_places', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.execute(NO_DELETE)
    _seed_calendar()


def downgrade() -> None:
    op.drop_geospatial_index('ix_special_places_geom', table_name='special_places', postgresql_using='gist', column_name='geom')
    op.drop_index('ix_special_places_district_code', table_name='special_places')
    op.drop_geospatial_table('special_places')
    op.drop_index('ix_projects_submitted_on', table_name='projects')
    op.drop_index('ix_projects_street_code', table_name='projects')
    op.drop_index('ix_projects_source', table_name='projects')
    op.drop_geospatial_index('ix_projects_site', table_name='projects', postgresql_using='gist', column_name='site')
    op.drop_index('ix_projects_grid_code', table_name='projects')
    op.drop_index('ix_projects_district_code_state', table_name='projects')
    op.drop_index('ix_projects_community_code', table_name='projects')
    op.drop_geospatial_table('projects')
    op.drop_geospatial_index('ix_estates_geom', table_name='estates', postgresql_using='gist', column_name='geom')
    op.drop_index('ix_estates_district_code', table_name='estates')
    op.drop_geospatial_table('estates')
    op.drop_table('calendar_days')
    op.execute("DROP FUNCTION IF EXISTS projects_no_delete()")
