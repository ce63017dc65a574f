"""Fava read-only on the ledger tier: `python -m ledger_service.fava_app --books DIR [--period YYYY-MM]`.

The same as `ledger-service fava`: brings the ledger up to date with the journal's closed
days (`ledger_tier.update`), then execs `fava --read-only` on `BOOKS/ledger/main.beancount`
(or on `BOOKS/ledger/period-YYYY-MM.beancount`, one period alone), with the project's
extension (Supply, Holder, Audit) declared in it.
"""

from __future__ import annotations

import argparse
import sys

from .ledger_tier import fava_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ledger_service.fava_app", description=__doc__.splitlines()[0])
    parser.add_argument("--books", required=True, help="the books folder (holds main.beancount)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--period", default=None, help="YYYY-MM: open that month alone")
    args = parser.parse_args(argv)
    try:
        fava_main(args.books, args.host, args.port, args.period)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
