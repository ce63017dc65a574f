"""`python -m importers identify|extract|archive FILES`: beangulp's command line.

    python -m importers identify -v statement.csv
    python -m importers extract -e BOOKS/main.beancount statement.csv > review.beancount
    python -m importers archive -o documents/ statement.csv

With `-e`, extract leaves out the statement lines the books already hold (settled
payouts carry the bank's serial as `bank_reference`) and marks repeats as duplicates.
"""

import beangulp

# Submodules, not the package's names: works even where an old editable install
# registered `importers` as a namespace package (before it had an __init__.py).
from importers.bank import PoolStatementImporter
from importers.grants import TaskGrantImporter
from importers.orders import OrderExportImporter


def main() -> None:
    beangulp.Ingest([PoolStatementImporter(), OrderExportImporter(), TaskGrantImporter()])()


if __name__ == "__main__":
    main()
