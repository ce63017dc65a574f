"""The WSGI entry point gunicorn serves: books from $LEDGER_BOOKS, database from $DATABASE_URL."""

import os

from .app import create_app

app = create_app(os.environ["LEDGER_BOOKS"], os.environ.get("DATABASE_URL") or None)
