"""Records: SQLAlchemy models, Alembic migrations, and the functions that read and change them."""
