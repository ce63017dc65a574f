"""Helpers shared by the engine tests: custom rules, a booked entry's postings, control balances,
the journal's bytes."""

from __future__ import annotations

from ledger_service import config
from ledger_service.store.db import load_globals


def custom(params, **changes):
    """`params` with `changes`, validated and normalised exactly as a rules file is on load."""
    meta = params.to_meta()
    meta.update({key: str(value) for key, value in changes.items()})
    return config.Params.from_meta(meta)


def postings(booked, **where):
    out = []
    for p in booked.entry.postings:
        if "account" in where and p.account != where["account"]:
            continue
        if all(p.get(k) == v for k, v in where.items() if k != "account"):
            out.append(p)
    return out


def one(booked, **where):
    found = postings(booked, **where)
    assert len(found) == 1, (where, found)
    return found[0]


def control(engine) -> dict:
    """The control balances, without accounts at zero."""
    with engine.Session() as session:
        return {k: v for k, v in load_globals(session).balances.items() if v != 0}


def journal_bytes(engine) -> dict:
    root = engine.books.root / "journal"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
