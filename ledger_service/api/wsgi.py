"""The WSGI entry point gunicorn serves: books from $LEDGER_BOOKS, database from $DATABASE_URL.

The service's own log lines (journal repairs, a journal that cannot be written) go to
stderr, next to gunicorn's.
"""

import logging
import os
import sys

from .app import create_app

_log = logging.getLogger("ledger_service")
if not _log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                                            "%Y-%m-%d %H:%M:%S %z"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)

# `serve --threads N` (N > 1): request threads in each worker, their bookings in shared commits.
app = create_app(os.environ["LEDGER_BOOKS"], os.environ.get("DATABASE_URL") or None,
                 group_commit=int(os.environ.get("LEDGER_THREADS") or "1") > 1)
