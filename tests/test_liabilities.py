"""The liabilities tree (issue 12 §3, §5): a Merkle-sum tree over holders, its daily checkpoints,
the holder proof, and what its verifier refuses."""

from __future__ import annotations

import copy
import json
import sqlite3
import shutil
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger_books import CLOSED, copy_books, demo_books
from ledger_service import merkle_sum as ms
from ledger_service import views
from ledger_service.cli import main
from ledger_service.entries import from_beancount
from ledger_service.journal import Books, day_files
from ledger_service.subledger import balance
from ledger_service.views import holder_index, liabilities


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


def checkpoint(root: Path, day) -> dict:
    return json.loads(liabilities.checkpoint_path(root, day).read_text())


def db_rows(root: Path) -> dict[str, list]:
    with sqlite3.connect(liabilities.db_path(root)) as c:
        return {t: c.execute(f"select * from {t} order by 1, 2").fetchall() for t in ("nodes", "leaves")}


# -- the pure module -----------------------------------------------------------------------------------------


def _leaves(n: int) -> list[ms.Node]:
    return [ms.leaf(ms.id_commit(ms.salt(b"k", f"h{i}"), f"h{i}"), Decimal(i), Decimal(i) / 4, Decimal(1))
            for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_root_is_the_rfc6962_shape_and_paths_fold_to_it(n):
    leaves = _leaves(n)

    def naive(items):
        if len(items) == 1:
            return items[0]
        k = 1 << ((len(items) - 1).bit_length() - 1)
        return ms.node(naive(items[:k]), naive(items[k:]))

    nodes = ms.memory_nodes(leaves)
    top = ms.root(lambda lv, i: nodes[(lv, i)], n)
    assert top == naive(leaves)
    assert top.base_sp == sum(Decimal(i) for i in range(n))
    for i in range(n):
        path = ms.path(lambda lv, j: nodes[(lv, j)], n, i)
        current = leaves[i]
        for side, sibling in path:
            current = ms.node(sibling, current) if side == "left" else ms.node(current, sibling)
        assert current == top


def test_empty_tree():
    assert ms.root(lambda lv, i: ms.EMPTY, 0).hash == ms.EMPTY_HASH
    assert ms.EMPTY.base_sp == 0


# -- the view ------------------------------------------------------------------------------------------------


def test_files_and_modes(books):
    assert liabilities.db_path(books).is_file()
    assert stat.S_IMODE(liabilities.db_path(books).stat().st_mode) == 0o600
    assert stat.S_IMODE(liabilities.secret_path(books).stat().st_mode) == 0o600
    assert stat.S_IMODE(liabilities.secret_path(books).parent.stat().st_mode) == 0o700
    for day in CLOSED:
        assert stat.S_IMODE(liabilities.checkpoint_path(books, day).stat().st_mode) == 0o600


def test_root_sums_give_the_control_accounts_within_the_residue(books):
    for day in CLOSED:
        obj = checkpoint(books, day)
        assert obj["version"] == "ledger-liabilities-v1" and obj["day"] == day.isoformat()
        assert liabilities.residue_faults(obj) == [], obj
        s = {k: Decimal(v) for k, v in obj["sums"].items()}
        idx = obj["indices"]
        c = ms.CTX
        assert Decimal(obj["totals"]["sp"]) == c.add(s["base_sp"], c.multiply(s["shares"], Decimal(idx["sp_index"])))
        assert Decimal(obj["totals"]["sv_active"]) == c.multiply(s["shares"], Decimal(idx["sv_index"]))
        assert len(obj["log_root"]) == 64 and len(obj["head"]) == 64
    last = checkpoint(books, CLOSED[-1])
    with holder_index.Reader(books) as reader:
        assert last["holders"] == reader.holder_count()


def test_view_equals_a_rebuild_after_incremental_closes(books, tmp_path):
    root = copy_books(books, tmp_path / "books")
    incremental = db_rows(root), {d: checkpoint(root, d) for d in CLOSED}
    views.rebuild(root)
    assert (db_rows(root), {d: checkpoint(root, d) for d in CLOSED}) == incremental
    assert liabilities.compare(root) == []


def test_a_close_updates_only_touched_leaves(books, tmp_path):
    """The last day fed to a tree standing at the day before writes only the leaves of its holders."""
    root = copy_books(books, tmp_path / "books")
    days = [d for d in day_files(Books(root)) if d.day in CLOSED]
    last = days[-1]
    touched = set()
    for directive in last.directives():
        entry = from_beancount(directive)
        if entry is not None:
            touched.update(holder_index.holders_of(entry))
    written = _incremental_last_day(root, last)
    assert 0 < written <= len(touched) < checkpoint(root, CLOSED[-1])["holders"]


def test_a_close_reads_the_days_holders_from_the_index_in_batches(books, tmp_path, monkeypatch):
    """The update applies the day's entries to the holder index's position with every holder read
    beforehand (`IndexState.prefetch`): no holder is looked up one query at a time."""
    root = copy_books(books, tmp_path / "books")
    last = [d for d in day_files(Books(root)) if d.day in CLOSED][-1]
    one_by_one: list[str] = []
    original = holder_index.IndexState.holder

    def holder(self, holder_id):
        if holder_id not in self._holders and holder_id not in self._absent:
            one_by_one.append(holder_id)
        return original(self, holder_id)

    monkeypatch.setattr(holder_index.IndexState, "holder", holder)
    assert _incremental_last_day(root, last) > 0
    assert one_by_one == []


def _incremental_last_day(root: Path, last) -> int:
    """Feed the last closed day to a liabilities update standing at the day before (the holder index
    rolled back to that day by a rebuild of a journal copy without it)."""
    scratch = root.parent / "scratch"
    shutil.copytree(root, scratch, ignore=shutil.ignore_patterns(".lock"))
    moved = scratch / last.relpath
    aside = scratch.parent / "aside.beancount"
    shutil.move(moved, aside)
    views.rebuild(scratch)
    shutil.move(aside, moved)
    counted = liabilities.stats["leaf_writes"]
    views.update(scratch)
    assert checkpoint(scratch, last.day) == checkpoint(root, last.day)
    assert db_rows(scratch) == db_rows(root)
    assert day_files(Books(scratch))
    return liabilities.stats["leaf_writes"] - counted


# -- the holder proof ----------------------------------------------------------------------------------------


def test_every_holders_proof_verifies_and_balances_match_the_index(books):
    with holder_index.Reader(books) as reader:
        state = reader.state()
        ids = [r[0] for r in reader._connection().execute(holder_index.select(holder_index.HOLDERS.c.id))]
        assert ids
        for holder_id in ids:
            proof = liabilities.holder_proof(books, holder_id)
            ms.verify_holder_proof(proof)
            want = balance(state.holder(holder_id), state.g, state)
            got = proof["balances"]
            assert Decimal(got["sp"]) == want.sp and Decimal(got["sv_active"]) == want.sv_active, holder_id
            assert Decimal(got["sv_locked"]) == want.sv_locked
            text = json.dumps(proof)
            assert not any(other in text for other in ids if other != holder_id and len(other) > 6
                           and other not in holder_id)


def test_a_proof_of_an_earlier_day_verifies(books):
    obj = checkpoint(books, CLOSED[2])
    with holder_index.Reader(books) as reader:
        some = reader._connection().execute(holder_index.select(holder_index.HOLDERS.c.id)).first()[0]
    try:
        proof = liabilities.holder_proof(books, some, CLOSED[2])
    except liabilities.ProofNotFound:
        return
    assert proof["liabilities"] == obj
    ms.verify_holder_proof(proof)


def test_unknown_holder_or_day(books):
    with pytest.raises(liabilities.ProofNotFound):
        liabilities.holder_proof(books, "nobody-at-all")
    with pytest.raises(liabilities.ProofNotFound):
        liabilities.holder_proof(books, "x", CLOSED[0].replace(year=2020))


def _a_proof(books) -> dict:
    with holder_index.Reader(books) as reader:
        for (holder_id,) in reader._connection().execute(holder_index.select(holder_index.HOLDERS.c.id)):
            proof = liabilities.holder_proof(books, holder_id)
            if proof["path"] and Decimal(proof["balances"]["sp"]) > 0:
                return proof
    raise AssertionError("no holder with SP")


def _refused(proof: dict) -> str:
    with pytest.raises(ms.ProofError) as info:
        ms.verify_holder_proof(proof)
    return info.value.check


def test_a_changed_balance_is_refused(books):
    proof = copy.deepcopy(_a_proof(books))
    proof["balances"]["sp"] = ms.text(Decimal(proof["balances"]["sp"]) + Decimal("1"))
    assert _refused(proof) == "balances"
    proof = copy.deepcopy(_a_proof(books))
    proof["leaf"]["base_sp"] = ms.text(Decimal(proof["leaf"]["base_sp"]) + Decimal("1"))
    assert _refused(proof) == "root"


def test_a_dropped_sibling_is_refused(books):
    proof = copy.deepcopy(_a_proof(books))
    proof["path"].pop()
    assert _refused(proof) == "root"


def test_a_negative_subtree_is_refused():
    """A sibling whose SP is negative, balanced by a leaf inflated by as much: the root's sums still
    give the control accounts, so only the non-negativity check catches it."""
    secret = b"s"
    sp_index = Decimal("2")
    mine = ms.leaf(ms.id_commit(ms.salt(secret, "me"), "me"), Decimal("5"), Decimal("1"), Decimal(0))
    hidden = ms.leaf("ab" * 32, Decimal("-10"), Decimal("1"), Decimal(0))  # SP at S=2: -8
    inflate = ms.leaf("cd" * 32, Decimal("20"), Decimal("0"), Decimal(0))
    other = ms.node(hidden, inflate)
    top = ms.node(mine, other)
    proof = {
        "version": "ledger-holder-proof-v1", "holder": "me", "salt": ms.salt(secret, "me"), "leaf_index": 0,
        "leaf": mine.figures(),
        "balances": {"sp": "7.0000", "sv_active": "1.0000", "sv_locked": "0.0000"},
        "path": [{"side": "right", "hash": other.hash, **other.figures()}],
        "liabilities": {"holders": 3, "root": top.hash, "sums": top.figures(),
                        "indices": {"epoch": 0, "sp_index": "2", "sv_index": "1"},
                        "totals": {"sp": ms.text(top.sp(sp_index)), "sv_active": ms.text(top.shares),
                                   "sv_locked": "0"}},
    }
    ms.verify_holder_proof(proof)  # the sibling subtree's own sums are >= 0: this one passes
    # the operator's proof for "me" with the negative leaf as the sibling itself
    proof2 = copy.deepcopy(proof)
    top2 = ms.node(mine, hidden)
    proof2["path"] = [{"side": "right", "hash": hidden.hash, **hidden.figures()}]
    proof2["liabilities"].update(root=top2.hash, sums=top2.figures(), holders=2,
                                 totals={"sp": ms.text(top2.sp(sp_index)), "sv_active": ms.text(top2.shares),
                                         "sv_locked": "0"})
    assert _refused(proof2) == "negative"


def test_verify_catches_a_changed_liabilities_file(books, tmp_path):
    root = copy_books(books, tmp_path / "books")
    assert liabilities.compare(root) == []
    path = liabilities.checkpoint_path(root, CLOSED[3])
    obj = json.loads(path.read_text())
    obj["sums"]["shares"] = ms.text(Decimal(obj["sums"]["shares"]) + 1)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    assert [f.rule for f in liabilities.compare(root)] == ["liabilities.root"]


def test_cli_prove_holder(books, tmp_path):
    proof = _a_proof(books)
    out = tmp_path / "p.json"
    result = CliRunner().invoke(main, ["prove", "holder", "--books", str(books), proof["holder"],
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == proof
    result = CliRunner().invoke(main, ["prove", "holder", "--books", str(books), "nobody-at-all"])
    assert result.exit_code != 0


@pytest.mark.parametrize("role", ["storefront", "finance", "auditor", "admin"])
def test_api_serves_the_holder_proof_to_every_role(books, tmp_path, role):
    from api_helpers import new_key
    from ledger_books import FixedClock

    from ledger_service.api.app import create_app
    from ledger_service.engine import Engine

    root = copy_books(books, tmp_path / "books")
    engine = Engine(root, clock=FixedClock())
    try:
        _id, key = new_key(engine, role)
        client = create_app(root, engine=engine).test_client()
        auth = {"Authorization": f"Bearer {key}"}
        want = _a_proof(root)
        holder_id = want["holder"]
        response = client.get(f"/v1/holders/{holder_id}/proof", headers=auth)
        assert response.status_code == 200, response.get_json()
        proof = response.get_json()
        assert proof == want
        ms.verify_holder_proof(proof)
        holder = client.get(f"/v1/holders/{holder_id}", headers=auth).get_json()
        assert holder is not None
        day = CLOSED[-1].isoformat()
        assert client.get(f"/v1/holders/{holder_id}/proof?date={day}", headers=auth).get_json() == want
        assert client.get("/v1/holders/nobody-at-all/proof", headers=auth).status_code == 404
        assert client.get(f"/v1/holders/{holder_id}/proof?date=2020-01-01", headers=auth).status_code == 404
        assert client.get(f"/v1/holders/{holder_id}/proof").status_code == 401
    finally:
        engine.dispose()
