"""Database tables. Each module holds one area's tables; import them all here for Alembic."""
