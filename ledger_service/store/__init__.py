"""The operational database: models, the State over it, Alembic migrations."""
