"""The WSGI entry point gunicorn serves: books from $LEDGER_BOOKS, database from $DATABASE_URL.

The service's own log lines (requests, journal repairs, days closed, keys, a journal that
cannot be written) go to stderr as JSON lines (`ledger_service.logs`), next to gunicorn's own.
"""

import os

from ..logs import configure
from .app import create_app

configure()
# `serve --threads N` (N > 1): request threads in each worker, their bookings in shared commits.
app = create_app(os.environ["LEDGER_BOOKS"], os.environ.get("DATABASE_URL") or None,
                 group_commit=int(os.environ.get("LEDGER_THREADS") or "1") > 1)
