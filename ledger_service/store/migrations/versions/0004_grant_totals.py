"""SV granted per holder and day and per campaign (the `grant` event's ceilings)

Revision ID: 0004
Revises: 0003

Two new tables, empty on books made before (they hold no `grant` event): `grant_days`
(holder, day) -> SV granted to the holder that business day (the open day's rows: a close
deletes its day's), and `grant_campaigns` (campaign) -> SV granted naming the campaign.
Both are derived from the journal (`verify` compares them with its replay). Downgrade drops
them.
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'grant_days',
        sa.Column('holder', sa.String(length=64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('sv', sa.String(length=96), nullable=False),
        sa.PrimaryKeyConstraint('holder', 'day'),
    )
    op.create_table(
        'grant_campaigns',
        sa.Column('campaign', sa.String(length=64), nullable=False),
        sa.Column('sv', sa.String(length=96), nullable=False),
        sa.PrimaryKeyConstraint('campaign'),
    )


def downgrade() -> None:
    op.drop_table('grant_campaigns')
    op.drop_table('grant_days')
