"""Fava's import configuration for the platform's documents.

Fava (1.30) runs this file (`runpy`) and reads `CONFIG`, a list of beangulp
importers, and `HOOKS`, a list of functions `(extracted, existing) -> extracted`.
Point the `import-config` option of a Fava ledger at it; see docs/importing.md:

    include "books/shop/main.beancount"
    2026-01-01 custom "fava-option" "import-config" "/path/to/importers/fava_config.py"
    2026-01-01 custom "fava-option" "import-dirs" "/path/to/imports"

Another bank's columns: replace PoolStatementImporter() below by, for example,
PoolStatementImporter(StatementColumns(date="记账日期", time=None, ...), name="pool-bank-b").
"""

import sys
from pathlib import Path

# runpy does not put this file's project on sys.path: make `importers` importable
# whatever directory Fava was started from.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from importers.bank import PoolStatementImporter, StatementColumns  # noqa: E402,F401
from importers.grants import TaskGrantImporter  # noqa: E402
from importers.orders import OrderExportImporter  # noqa: E402

CONFIG = [
    PoolStatementImporter(),
    OrderExportImporter(),
    TaskGrantImporter(),
]

HOOKS: list = []
