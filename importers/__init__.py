"""beangulp importers of the platform's documents (issue #5).

- `bank.PoolStatementImporter`: the pool's bank statement (Chinese bank CSV export);
- `orders.OrderExportImporter`: the storefront's order export;
- `grants.TaskGrantImporter`: task completions, SV grants (issue 13).

    python -m importers identify|extract|archive FILES     (beangulp's command line)

Fava: `importers/fava_config.py` is an `import-config` (see docs/importing.md). The
books themselves change only through the engine: `ledger-service reconcile`
(settles the payouts a statement shows paid), `ledger-service import-orders` and
`ledger-service import-grants`.
"""

from .bank import DEFAULT_COLUMNS, PoolStatementImporter, Statement, StatementColumns, StatementLine, parse_statement
from .common import FormatError
from .grants import TaskGrantImporter, read_grants
from .orders import OrderExportImporter, read_orders


def importers() -> list:
    """The importers with their default configuration (beangulp CLI and Fava)."""
    return [PoolStatementImporter(), OrderExportImporter(), TaskGrantImporter()]


__all__ = [
    "DEFAULT_COLUMNS", "FormatError", "OrderExportImporter", "PoolStatementImporter", "Statement",
    "StatementColumns", "StatementLine", "TaskGrantImporter", "importers", "parse_statement", "read_grants",
    "read_orders",
]
