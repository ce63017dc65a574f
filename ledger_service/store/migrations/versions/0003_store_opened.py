"""holders.opened: the day a store opened under the "sp_held" deposit rule (issue 13)

Revision ID: 0003
Revises: 0002

`holders` gains `opened` (Date, nullable): the day of a store's first order under
`merchant.deposit_rule = "sp_held"` (`rules.orders.opening`). Rows written before this
revision belong to books whose genesis entry predates the parameter, so their rule is
"cash_paid" and `opened` stays NULL for them, as `apply` leaves it on a replay of their
journal. Downgrade drops the column.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('holders', sa.Column('opened', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('holders') as batch:  # SQLite drops a column through a table rebuild
        batch.drop_column('opened')
