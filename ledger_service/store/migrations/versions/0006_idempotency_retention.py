"""Idempotency records expire: an index on their age, and the event id instead of the answer

Revision ID: 0006
Revises: 0005

`idempotency_keys` gains `event_id` (String(64), null: the row keeps its whole `response`) and
the index `ix_idempotency_keys_created`, by which the rows older than the retention are deleted
as days close (issue 17). Rows written before keep their responses and expire the same way.
Downgrade drops both.
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('idempotency_keys') as batch:
        batch.add_column(sa.Column('event_id', sa.String(length=64), nullable=True))
    op.create_index('ix_idempotency_keys_created', 'idempotency_keys', ['created'])


def downgrade() -> None:
    op.drop_index('ix_idempotency_keys_created', table_name='idempotency_keys')
    with op.batch_alter_table('idempotency_keys') as batch:
        batch.drop_column('event_id')
