"""API keys record the day they were last used

Revision ID: 0005
Revises: 0004

`api_keys` gains `last_used` (DateTime, null: never used), which the API sets at most once a
day per key (`store.keys.touch`) and `ledger-service keys list` shows (issue 14). Keys made
before this revision read "never" until their next use. Downgrade drops the column.
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('last_used', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('last_used')
