"""idempotency keys scoped to the API key that sent them

Revision ID: 0002
Revises: 0001

`idempotency_keys` gains `api_key_id` (String(32)) and its primary key becomes
(api_key_id, key). The table is rebuilt (a new table, the rows copied, the old one dropped,
the new one renamed): the same steps on SQLite and PostgreSQL. Rows written before this
revision cannot say which key sent them: they keep the placeholder scope `legacy` (not a key
id: ids are 12 hex digits), which the engine still consults for any key, as before.
Downgrade keeps, of each key, its oldest row.
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

LEGACY_SCOPE = "legacy"
_COLUMNS = ("key", "request_hash", "status", "response", "created")


def _payload() -> list[sa.Column]:
    return [
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('response', sa.LargeBinary(), nullable=False),
        sa.Column('created', sa.DateTime(), nullable=False),
    ]


def upgrade() -> None:
    new = op.create_table(
        'idempotency_keys_new',
        sa.Column('api_key_id', sa.String(length=32), nullable=False),
        *_payload(),
        sa.PrimaryKeyConstraint('api_key_id', 'key', name='pk_idempotency_keys'),
    )
    old = sa.table('idempotency_keys', *[sa.column(name) for name in _COLUMNS])
    op.execute(new.insert().from_select(
        ['api_key_id', *_COLUMNS],
        sa.select(sa.literal(LEGACY_SCOPE, sa.String(32)), *[old.c[name] for name in _COLUMNS])))
    op.drop_table('idempotency_keys')
    op.rename_table('idempotency_keys_new', 'idempotency_keys')


def downgrade() -> None:
    back = op.create_table(
        'idempotency_keys_old',
        *_payload(),
        sa.PrimaryKeyConstraint('key', name='pk_idempotency_keys_v1'),
    )
    t = sa.table('idempotency_keys', sa.column('api_key_id'), *[sa.column(name) for name in _COLUMNS]).alias('t')
    u = sa.table('idempotency_keys', sa.column('api_key_id'), sa.column('key'), sa.column('created')).alias('u')
    older = sa.select(sa.literal(1)).where(
        u.c.key == t.c.key,
        sa.or_(u.c.created < t.c.created, sa.and_(u.c.created == t.c.created, u.c.api_key_id < t.c.api_key_id)))
    op.execute(back.insert().from_select(list(_COLUMNS), sa.select(*[t.c[name] for name in _COLUMNS])
                                         .where(~older.exists())))
    op.drop_table('idempotency_keys')
    op.rename_table('idempotency_keys_old', 'idempotency_keys')
