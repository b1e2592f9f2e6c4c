"""route plans: inspector roster, versioned route plans, their routes, stops and left-out sites

Revision ID: 0004
Revises: 0003

Plans are append-only: a re-plan is a new row (``parent_id``, same ``root_id``, version n + 1),
so ``(root_id, version)`` is unique. ``inputs`` keeps everything the planner was given.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_geospatial_table('inspectors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('street_code', sa.String(length=24), nullable=False),
    sa.Column('community_code', sa.String(length=24), nullable=True),
    sa.Column('start_point', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('end_point', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('shift_start', sa.Time(), nullable=False),
    sa.Column('shift_end', sa.Time(), nullable=False),
    sa.Column('lunch_earliest', sa.Time(), nullable=True),
    sa.Column('lunch_latest', sa.Time(), nullable=True),
    sa.Column('lunch_minutes', sa.Integer(), nullable=True),
    sa.Column('allowed_grids', postgresql.ARRAY(sa.String(length=24)), nullable=True),
    sa.Column('max_stops', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("mode IN ('walk', 'ebike', 'car')", name=op.f('ck_inspectors_mode')),
    sa.CheckConstraint('shift_end > shift_start', name=op.f('ck_inspectors_shift')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspectors')),
    sa.UniqueConstraint('code', name=op.f('uq_inspectors_code'))
    )
    op.create_index('ix_inspectors_street_code', 'inspectors', ['street_code'], unique=False)
    op.create_table('route_plans',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('street_code', sa.String(length=24), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('plan_date', sa.Date(), nullable=False),
    sa.Column('days', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('status', sa.String(length=8), server_default='draft', nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('root_id', sa.BigInteger(), nullable=True),
    sa.Column('parent_id', sa.BigInteger(), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('matrix_source', sa.String(length=24), nullable=False),
    sa.Column('inputs', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('summary', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.CheckConstraint("kind IN ('day', 'week')", name=op.f('ck_route_plans_kind')),
    sa.CheckConstraint("status IN ('draft', 'issued')", name=op.f('ck_route_plans_status')),
    sa.ForeignKeyConstraint(['parent_id'], ['route_plans.id'], name=op.f('fk_route_plans_parent_id_route_plans')),
    sa.ForeignKeyConstraint(['root_id'], ['route_plans.id'], name=op.f('fk_route_plans_root_id_route_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_plans')),
    sa.UniqueConstraint('root_id', 'version', name=op.f('uq_route_plans_root_id_version'))
    )
    op.create_index('ix_route_plans_district_code_plan_date', 'route_plans', ['district_code', 'plan_date'], unique=False)
    op.create_geospatial_table('route_plan_routes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('plan_id', sa.BigInteger(), nullable=False),
    sa.Column('day_index', sa.Integer(), nullable=False),
    sa.Column('route_date', sa.Date(), nullable=False),
    sa.Column('inspector_code', sa.String(length=32), nullable=False),
    sa.Column('colour', sa.String(length=7), nullable=False),
    sa.Column('geometry', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=False),
    sa.Column('travel_s', sa.Float(), nullable=False),
    sa.Column('depart_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('return_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['route_plans.id'], name=op.f('fk_route_plan_routes_plan_id_route_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_plan_routes')),
    sa.UniqueConstraint('plan_id', 'day_index', 'inspector_code', name=op.f('uq_route_plan_routes_plan_id_day_index_inspector_code'))
    )
    op.create_geospatial_table('route_plan_left_out',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('plan_id', sa.BigInteger(), nullable=False),
    sa.Column('day_index', sa.Integer(), nullable=False),
    sa.Column('site_key', sa.String(length=40), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('hazard_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('mandatory', sa.Boolean(), nullable=False),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('constraint_name', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['hazard_id'], ['hazards.id'], name=op.f('fk_route_plan_left_out_hazard_id_hazards')),
    sa.ForeignKeyConstraint(['plan_id'], ['route_plans.id'], name=op.f('fk_route_plan_left_out_plan_id_route_plans')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_route_plan_left_out_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_plan_left_out'))
    )
    op.create_index('ix_route_plan_left_out_plan_id', 'route_plan_left_out', ['plan_id'], unique=False)
    op.create_geospatial_table('route_plan_stops',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('plan_id', sa.BigInteger(), nullable=False),
    sa.Column('route_id', sa.BigInteger(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('site_key', sa.String(length=40), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('hazard_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('mandatory', sa.Boolean(), nullable=False),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('arrive_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('depart_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('wait_s', sa.Float(), nullable=False),
    sa.Column('travel_s', sa.Float(), nullable=False),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('fixed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.ForeignKeyConstraint(['hazard_id'], ['hazards.id'], name=op.f('fk_route_plan_stops_hazard_id_hazards')),
    sa.ForeignKeyConstraint(['plan_id'], ['route_plans.id'], name=op.f('fk_route_plan_stops_plan_id_route_plans')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_route_plan_stops_project_id_projects')),
    sa.ForeignKeyConstraint(['route_id'], ['route_plan_routes.id'], name=op.f('fk_route_plan_stops_route_id_route_plan_routes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_plan_stops')),
    sa.UniqueConstraint('route_id', 'sequence', name=op.f('uq_route_plan_stops_route_id_sequence'))
    )
    op.create_index('ix_route_plan_stops_plan_id', 'route_plan_stops', ['plan_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_route_plan_stops_plan_id', table_name='route_plan_stops')
    op.drop_geospatial_table('route_plan_stops')
    op.drop_index('ix_route_plan_left_out_plan_id', table_name='route_plan_left_out')
    op.drop_geospatial_table('route_plan_left_out')
    op.drop_geospatial_table('route_plan_routes')
    op.drop_index('ix_route_plans_district_code_plan_date', table_name='route_plans')
    op.drop_table('route_plans')
    op.drop_index('ix_inspectors_street_code', table_name='inspectors')
    op.drop_geospatial_table('inspectors')
