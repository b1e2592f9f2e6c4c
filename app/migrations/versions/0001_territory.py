"""territory and audit log

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('entity', sa.String(length=50), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('from_state', sa.String(length=50), nullable=True),
    sa.Column('to_state', sa.String(length=50), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('district_code', sa.String(length=12), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_entity_entity_id', 'audit_log', ['entity', 'entity_id'], unique=False)
    # The audit log is append-only for every role: history cannot be rewritten.
    op.execute(APPEND_ONLY)
    op.create_table('boundary_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('source_crs', sa.String(length=64), nullable=False),
    sa.Column('feature_count', sa.Integer(), nullable=False),
    sa.Column('closed_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('report', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_boundary_imports'))
    )
    op.create_geospatial_table('communities',
    sa.Column('parent_code', sa.String(length=24), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_crs', sa.String(length=64), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['boundary_imports.id'], name=op.f('fk_communities_import_id_boundary_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_communities'))
    )
    op.create_index('ix_communities_district_code', 'communities', ['district_code'], unique=False)
    op.create_geospatial_index('ix_communities_geom', 'communities', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('uq_communities_current_code', 'communities', ['code'], unique=True, postgresql_where=sa.text('valid_to IS NULL'))
    op.create_geospatial_table('districts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_crs', sa.String(length=64), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['boundary_imports.id'], name=op.f('fk_districts_import_id_boundary_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_districts'))
    )
    op.create_index('ix_districts_district_code', 'districts', ['district_code'], unique=False)
    op.create_geospatial_index('ix_districts_geom', 'districts', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('uq_districts_current_code', 'districts', ['code'], unique=True, postgresql_where=sa.text('valid_to IS NULL'))
    op.create_geospatial_table('grids',
    sa.Column('parent_code', sa.String(length=24), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_crs', sa.String(length=64), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['boundary_imports.id'], name=op.f('fk_grids_import_id_boundary_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grids'))
    )
    op.create_index('ix_grids_district_code', 'grids', ['district_code'], unique=False)
    op.create_geospatial_index('ix_grids_geom', 'grids', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('uq_grids_current_code', 'grids', ['code'], unique=True, postgresql_where=sa.text('valid_to IS NULL'))
    op.create_geospatial_table('streets',
    sa.Column('parent_code', sa.String(length=24), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_crs', sa.String(length=64), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['boundary_imports.id'], name=op.f('fk_streets_import_id_boundary_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_streets'))
    )
    op.create_index('ix_streets_district_code', 'streets', ['district_code'], unique=False)
    op.create_geospatial_index('ix_streets_geom', 'streets', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('uq_streets_current_code', 'streets', ['code'], unique=True, postgresql_where=sa.text('valid_to IS NULL'))


def downgrade() -> None:
    op.drop_index('uq_streets_current_code', table_name='streets', postgresql_where=sa.text('valid_to IS NULL'))
    op.drop_geospatial_index('ix_streets_geom', table_name='streets', postgresql_using='gist', column_name='geom')
    op.drop_index('ix_streets_district_code', table_name='streets')
    op.drop_geospatial_table('streets')
    op.drop_index('uq_grids_current_code', table_name='grids', postgresql_where=sa.text('valid_to IS NULL'))
    op.drop_geospatial_index('ix_grids_geom', table_name='grids', postgresql_using='gist', column_name='geom')
    op.drop_index('ix_grids_district_code', table_name='grids')
    op.drop_geospatial_table('grids')
    op.drop_index('uq_districts_current_code', table_name='districts', postgresql_where=sa.text('valid_to IS NULL'))
    op.drop_geospatial_index('ix_districts_geom', table_name='districts', postgresql_using='gist', column_name='geom')
    op.drop_index('ix_districts_district_code', table_name='districts')
    op.drop_geospatial_table('districts')
    op.drop_index('uq_communities_current_code', table_name='communities', postgresql_where=sa.text('valid_to IS NULL'))
    op.drop_geospatial_index('ix_communities_geom', table_name='communities', postgresql_using='gist', column_name='geom')
    op.drop_index('ix_communities_district_code', table_name='communities')
    op.drop_geospatial_table('communities')
    op.drop_table('boundary_imports')
    op.drop_index('ix_audit_log_entity_entity_id', table_name='audit_log')
    op.drop_table('audit_log')
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
