"""The event log (issue 12 §2, §5): the RFC 6962 tree over the chain, the daily checkpoints,
their inclusion and consistency proofs (view, API, CLI, verify), and what they catch.

Every proof is checked with `ledger_service.merkle`'s RFC 9162 verifiers, from the JSON alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sqlite3
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event

from api_helpers import new_key
from ledger_books import CLOSED, OPEN_DAY, FixedClock, chain, copy_books, demo_books
from ledger_service import config, merkle, views
from ledger_service.api.app import create_app
from ledger_service.audit.verify import verify
from ledger_service.cli import main
from ledger_service.engine import Engine
from ledger_service.entries import Price, Transaction, entry_hash, from_beancount, render, with_meta
from ledger_service.journal import Books, day_file, journal_directives, parse_file
from ledger_service.rules.events import Register
from ledger_service.views import event_log
from ledger_service.views.base import sqlite_engine


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


def tables(root: Path) -> dict[str, list]:
    with sqlite3.connect(event_log.log_path(root)) as c:
        return {t: c.execute(f"select * from {t} order by 1, 2").fetchall()
                for t in ("nodes", "checkpoints", "leaf_lines")}


VERIFIER = Path(__file__).resolve().parent.parent / "verifier" / "ledger_verify.py"


def check_inclusion(proof: dict) -> bool:
    """What a member checks, from the proof's JSON alone."""
    cp = proof["checkpoint"]
    return (hashlib.sha256(proof["canonical"].encode("utf-8")).hexdigest() == proof["entry_hash"]
            and f"prev:{proof['prev']}" in proof["canonical"].split("\n")
            and proof["leaf_index"] == proof["seq"] - 1
            and merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(proof["entry_hash"])), proof["leaf_index"],
                                        cp["log_size"], [bytes.fromhex(p) for p in proof["path"]],
                                        bytes.fromhex(cp["log_root"])))


def check_consistency(old: dict, new: dict, path: list[str]) -> bool:
    return merkle.verify_consistency(old["log_size"], new["log_size"], bytes.fromhex(old["log_root"]),
                                     bytes.fromhex(new["log_root"]), [bytes.fromhex(p) for p in path])


# -- the view -------------------------------------------------------------------------------------------------


def test_checkpoints_are_the_roots_of_the_journal(books: Path):
    entries = chain(books)
    files = sorted((books / "checkpoints").glob("????-??-??.json"))
    assert [p.stem for p in files] == [d.isoformat() for d in CLOSED]  # one per closed day, none for the open day
    leaves = [bytes.fromhex(e.get("hash")) for e in entries]
    releases = [i + 1 for i, e in enumerate(entries) if isinstance(e, Transaction) and e.kind == "release"]
    for day, path, last in zip(CLOSED, files, releases, strict=True):
        cp = json.loads(path.read_text(encoding="utf-8"))
        log_fields = {k: cp[k] for k in ("day", "last_seq", "head", "log_size", "log_root")}
        assert cp["version"] == "ledger-checkpoint-v2"  # signed (tests/test_signed_checkpoints.py)
        assert log_fields == {"day": day.isoformat(), "last_seq": last, "head": entries[last - 1].get("hash"),
                              "log_size": last, "log_root": merkle.root(leaves[:last]).hex()}
        # the day's file ends with its release; the next day's price opens the next day's file
        assert parse_file(books / day_file(day))[0][-1].meta["seq"] == str(last)
        assert isinstance(entries[last], Price) and entries[last].date == day + timedelta(days=1)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((books / "checkpoints").stat().st_mode) == 0o700
    assert stat.S_IMODE(event_log.log_path(books).stat().st_mode) == 0o600
    assert event_log.compare(books) == []


def test_the_view_equals_a_rebuild_and_grows_day_by_day(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    before = tables(copy)
    n = before["checkpoints"][-1][3]
    assert len(before["nodes"]) == sum(n >> level for level in range(n.bit_length()))  # every perfect subtree
    written = views.rebuild(copy)
    assert "ledger/event_log.sqlite" in written
    assert tables(copy) == before
    # incremental: drop the last two days from the view, update, same nodes
    with sqlite3.connect(event_log.log_path(copy)) as c:
        size = c.execute("select log_size from checkpoints where day = ?", (CLOSED[-3].isoformat(),)).fetchone()[0]
        c.execute("delete from checkpoints where day > ?", (CLOSED[-3].isoformat(),))
        c.execute('delete from nodes where ("index" + 1) << level > ?', (size,))
    assert views.update(copy) == ["ledger/event_log.sqlite"]  # the files are unchanged
    assert tables(copy) == before
    assert views.compare(copy) == []


def test_the_engine_extends_the_log_as_days_close(tmp_path: Path):
    root = tmp_path / "books"
    start = date(2026, 3, 1)
    engine = Engine.init(root, config.load("seed-a"), start=start, clock=FixedClock(date(2026, 3, 6)))
    try:
        for i in range(4):
            day = start + timedelta(days=i)
            for j in range(3 + i):
                engine.submit(Register(f"m{i}-{j}"), day)
            engine.close_days(day)
            assert (root / "checkpoints" / f"{day}.json").is_file()
        assert event_log.compare(root) == []
    finally:
        engine.dispose()
    entries = chain(root)
    checkpoints = [json.loads(p.read_text()) for p in sorted((root / "checkpoints").glob("????-??-??.json"))]
    # every event of small books proves against every later checkpoint; every pair is consistent
    for seq, entry in enumerate(entries, start=1):
        event_id = f"P{seq:09d}" if isinstance(entry, Price) else entry.get("event")
        for cp in checkpoints:
            day = date.fromisoformat(cp["day"])
            if seq <= cp["last_seq"]:
                proof = event_log.inclusion_proof(root, event_id, day)
                assert proof["checkpoint"] == cp and proof["event_id"] == event_id and proof["seq"] == seq
                assert check_inclusion(proof), (event_id, cp["day"])
                assert len(proof["path"]) <= math.ceil(math.log2(cp["log_size"]))
            elif seq <= len(entries) and cp is checkpoints[-1]:
                with pytest.raises(Exception, match="after the checkpoint"):
                    event_log.inclusion_proof(root, event_id, day)
    for i, old in enumerate(checkpoints):
        for new in checkpoints[i:]:
            proof = event_log.consistency_proof(root, date.fromisoformat(old["day"]), date.fromisoformat(new["day"]))
            assert proof["from"] == old and proof["to"] == new and proof["version"] == "ledger-consistency-v1"
            assert check_consistency(old, new, proof["path"])
            assert (proof["path"] == []) == (old == new)


def test_refusals(books: Path):
    from ledger_service.errors import Conflict, Invalid, NotFound

    with pytest.raises(NotFound, match="no event"):
        event_log.inclusion_proof(books, "E999999999")
    with pytest.raises(NotFound, match="no event"):
        event_log.inclusion_proof(books, "nope")
    with pytest.raises(NotFound) as found:
        event_log.inclusion_proof(books, "E000000001", OPEN_DAY)
    assert found.value.rule == "checkpoint.unknown"
    last = chain(books)[-1]  # the open day's price: booked, not yet in a checkpoint
    with pytest.raises(Conflict) as conflict:
        event_log.inclusion_proof(books, f"P{int(last.get('seq')):09d}")
    assert conflict.value.rule == "proof.after_checkpoint"
    with pytest.raises(Invalid) as invalid:
        event_log.consistency_proof(books, CLOSED[2], CLOSED[1])
    assert invalid.value.rule == "proof.bad_range"


# -- the API and the command line ------------------------------------------------------------------------------


def test_api_serves_checkpoints_and_proofs_that_verify(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    engine = Engine(copy, clock=FixedClock())
    try:
        _id, key = new_key(engine, "storefront")
        client = create_app(copy, engine=engine).test_client()
        auth = {"Authorization": f"Bearer {key}"}
        files = {p.stem: json.loads(p.read_text()) for p in (copy / "checkpoints").glob("????-??-??.json")}
        latest = client.get("/v1/checkpoints/latest", headers=auth)
        assert latest.status_code == 200 and latest.get_json() == files[CLOSED[-1].isoformat()]
        day = CLOSED[2].isoformat()
        assert client.get(f"/v1/checkpoints/{day}", headers=auth).get_json() == files[day]
        consistency = client.get(f"/v1/checkpoints/consistency?from={day}&to={CLOSED[-1]}", headers=auth).get_json()
        assert consistency["from"] == files[day] and check_consistency(files[day], latest.get_json(),
                                                                        consistency["path"])
        for event_id in ("E000000001", "E000000009", f"P{files[day]['last_seq'] + 1:09d}"):
            proof = client.get(f"/v1/events/{event_id}/proof", headers=auth).get_json()
            assert proof["checkpoint"] == latest.get_json() and check_inclusion(proof), proof
        proof = client.get(f"/v1/events/E000000009/proof?checkpoint={day}", headers=auth).get_json()
        assert proof["checkpoint"] == files[day] and check_inclusion(proof)
        # what the API serves verifies with the standalone program (standard library only), against a kept checkpoint
        kept = tmp_path / "kept.json"
        kept.write_text(json.dumps(files[day]), encoding="utf-8")
        for name, document, args in (("inclusion", proof, ["--checkpoint", str(kept)]),
                                     ("consistency", consistency, ["--trusted-from", str(kept)])):
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps(document), encoding="utf-8")
            done = subprocess.run([sys.executable, str(VERIFIER), name, str(path), *args],
                                  capture_output=True, text=True, timeout=60)
            assert (done.returncode, done.stdout[:4]) == (0, "OK: "), done.stdout + done.stderr
        # errors: problem+json like every read
        answers = {
            "/v1/checkpoints/2026-13-01": (422, "input.bad_date"),
            "/v1/checkpoints/20260301": (422, "input.bad_date"),
            f"/v1/checkpoints/{OPEN_DAY}": (404, "checkpoint.unknown"),
            f"/v1/checkpoints/consistency?from={CLOSED[-1]}&to={day}": (409, "proof.bad_range"),  # a rule: 409
            f"/v1/checkpoints/consistency?from={day}&to={OPEN_DAY}": (404, "checkpoint.unknown"),
            f"/v1/checkpoints/consistency?from={day}": (422, None),
            "/v1/events/E999999999/proof": (404, "event.unknown"),
            f"/v1/events/E000000009/proof?checkpoint={OPEN_DAY}": (404, "checkpoint.unknown"),
            "/v1/events/E000000009/proof?checkpoint=2026-3-1": (422, "input.bad_date"),
            f"/v1/events/P{int(chain(copy)[-1].get('seq')):09d}/proof": (409, "proof.after_checkpoint"),
            f"/v1/events/E{files[day]['last_seq'] + 5:09d}/proof?checkpoint={day}": (409, "proof.after_checkpoint"),
        }
        for path, (status, rule) in answers.items():
            response = client.get(path, headers=auth)
            assert response.status_code == status, (path, response.get_json())
            assert response.mimetype == "application/problem+json"
            if rule:
                assert response.get_json()["rule"] == rule, (path, response.get_json())
        assert client.get("/v1/checkpoints/latest").status_code == 401
        spec = client.get("/openapi.json").get_json()
        for path in ("/v1/checkpoints/latest", "/v1/checkpoints/consistency", "/v1/checkpoints/{day}",
                     "/v1/events/{event_id}/proof"):
            assert "200" in spec["paths"][path]["get"]["responses"], path
        assert "409" in spec["paths"]["/v1/events/{event_id}/proof"]["get"]["responses"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("role", ["storefront", "finance", "auditor", "admin"])
def test_every_role_may_read_the_proofs(books: Path, tmp_path: Path, role: str):
    copy = copy_books(books, tmp_path / "books")
    engine = Engine(copy, clock=FixedClock())
    try:
        _id, key = new_key(engine, role)
        client = create_app(copy, engine=engine).test_client()
        for path in ("/v1/checkpoints/latest", f"/v1/checkpoints/{CLOSED[1]}", "/v1/events/E000000003/proof",
                     f"/v1/checkpoints/consistency?from={CLOSED[0]}&to={CLOSED[1]}"):
            response = client.get(path, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, (role, path, response.get_json())
            assert client.get(path).status_code == 401
    finally:
        engine.dispose()


def test_cli_writes_the_same_proofs(books: Path, tmp_path: Path):
    runner = CliRunner()
    out = tmp_path / "proof.json"
    result = runner.invoke(main, ["prove", "event", "--books", str(books), "E000000009", "--checkpoint",
                                  CLOSED[3].isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    proof = json.loads(out.read_text(encoding="utf-8"))
    assert proof == event_log.inclusion_proof(books, "E000000009", CLOSED[3]) and check_inclusion(proof)
    result = runner.invoke(main, ["prove", "consistency", "--books", str(books), "--from", CLOSED[0].isoformat(),
                                  "--to", CLOSED[-1].isoformat()])
    assert result.exit_code == 0, result.output
    proof = json.loads(result.stdout)
    assert check_consistency(proof["from"], proof["to"], proof["path"])
    result = runner.invoke(main, ["prove", "event", "--books", str(books), "E999999999"])
    assert result.exit_code == 2 and "event.unknown" in result.output
    result = runner.invoke(main, ["prove", "consistency", "--books", str(books), "--from", "2026-3-1", "--to",
                                  CLOSED[0].isoformat()])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output


# -- a proof reads its entry, not its day file -------------------------------------------------------------------


def every_event(root: Path) -> list[tuple[int, str]]:
    """(seq, id as the API names it) of every entry in a checkpoint of `root`."""
    last = event_log.checkpoint(root)["last_seq"]
    return [(seq, f"P{seq:09d}" if isinstance(e, Price) else e.get("event"))
            for seq, e in enumerate(chain(root), start=1) if seq <= last]


def leaf_lines(root: Path) -> dict[int, int]:
    with sqlite3.connect(event_log.log_path(root)) as c:
        return dict(c.execute("select seq, line from leaf_lines").fetchall())


def no_whole_file(monkeypatch) -> None:
    def refuse(path):
        raise AssertionError(f"the proof parsed the whole of {path}")

    monkeypatch.setattr(event_log, "parse_file", refuse)


def test_a_proof_reads_its_entry_at_its_recorded_line(books: Path, monkeypatch):
    lines = leaf_lines(books)
    events = every_event(books)
    assert sorted(lines) == [seq for seq, _id in events]  # every leaf's line, none of the open day
    for _path, directive, _errors in journal_directives(Books(books)):  # Beancount's own lineno
        if directive is not None and int(directive.meta["seq"]) in lines:
            assert lines[int(directive.meta["seq"])] == directive.meta["lineno"]
    no_whole_file(monkeypatch)
    for seq, event_id in events:
        proof = event_log.inclusion_proof(books, event_id, CLOSED[-1])
        assert proof["seq"] == seq and check_inclusion(proof), event_id
    proof = event_log.inclusion_proof(books, "E000000009", CLOSED[3])
    assert check_inclusion(proof) and proof["checkpoint"]["day"] == CLOSED[3].isoformat()
    from ledger_service.errors import NotFound

    price = next(event_id for _seq, event_id in events if event_id.startswith("P"))
    with pytest.raises(NotFound):  # the entry at that seq is a price, not an event of that id
        event_log.inclusion_proof(books, "E" + price[1:])


def test_an_event_log_without_lines_parses_the_day_file_until_its_rebuild(books: Path, tmp_path: Path, monkeypatch):
    copy = copy_books(books, tmp_path / "books")
    with sqlite3.connect(event_log.log_path(copy)) as c:  # an event log written before leaf_lines existed
        c.execute("drop table leaf_lines")
    before = tables_without_lines(copy)
    events = every_event(copy)
    sample = events[:3] + events[-3:]
    proofs = {event_id: event_log.inclusion_proof(copy, event_id) for _seq, event_id in sample}
    assert all(check_inclusion(p) for p in proofs.values())
    assert not inspect_has_lines(copy)  # a proof only reads: it creates no table
    assert event_log.compare(copy) == []  # no line recorded is no fault
    assert views.update(copy) == [] and tables_without_lines(copy) == before and leaf_lines(copy) == {}
    assert event_log.compare(copy) == []
    views.rebuild(copy)
    assert leaf_lines(copy) == leaf_lines(books) and tables_without_lines(copy) == before
    no_whole_file(monkeypatch)
    assert {event_id: event_log.inclusion_proof(copy, event_id) for _seq, event_id in sample} == proofs


def tables_without_lines(root: Path) -> dict[str, list]:
    with sqlite3.connect(event_log.log_path(root)) as c:
        return {t: c.execute(f"select * from {t} order by 1, 2").fetchall() for t in ("nodes", "checkpoints")}


def inspect_has_lines(root: Path) -> bool:
    with sqlite3.connect(event_log.log_path(root)) as c:
        return c.execute("select count(*) from sqlite_master where name = 'leaf_lines'").fetchone()[0] == 1


def test_a_wrong_line_never_yields_a_wrong_proof(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    lines = leaf_lines(copy)
    events = every_event(copy)
    day_of_seq = {}
    for path, directive, _errors in journal_directives(Books(copy)):
        if directive is not None:
            day_of_seq[int(directive.meta["seq"])] = path
    rng = random.Random(12)
    picked = rng.sample(events, 12) + [events[0], events[-1]]
    wrong = {}
    for k, (seq, _id) in enumerate(picked):
        others = sorted(v for s, v in lines.items() if day_of_seq[s] == day_of_seq[seq] and s != seq)
        wrong[seq] = [others[k % len(others)],  # another entry of the same file
                      lines[seq] + 1, lines[seq] + 3,  # a metadata or posting line inside the entry
                      0, 1, -5, 10**9][k % 7]  # no line, the file's first, outside the file
    with sqlite3.connect(event_log.log_path(copy)) as c:
        c.executemany("update leaf_lines set line = ? where seq = ?", [(v, s) for s, v in wrong.items()])
    named = {f.message.split(" ")[1] for f in event_log.compare(copy) if f.rule == "event_log.line"}
    assert named == {str(s) for s in wrong}, named  # verify names every wrong line
    for seq, event_id in picked:  # each still proves, correctly: the line was only a hint
        proof = event_log.inclusion_proof(copy, event_id)
        assert proof["seq"] == seq and proof["event_id"] == event_id and check_inclusion(proof), (seq, wrong[seq])
    # the journal itself changed at an entry whose line is right: 503 journal.fault, as before
    seq, event_id = next((s, i) for s, i in events if i.startswith("E") and s not in wrong)
    path = day_of_seq[seq]
    text = path.read_text(encoding="utf-8").split("\n")
    head_line = lines[seq] - 1
    assert text[head_line].startswith("20"), text[head_line]  # the transaction's first line
    text[head_line] = text[head_line].rstrip() + " #forged"
    path.write_text("\n".join(text), encoding="utf-8")
    # and a wrong line of another entry that points at the forged one
    other = next(s for s, i in events if s not in wrong and s != seq and day_of_seq[s] == path)
    with sqlite3.connect(event_log.log_path(copy)) as c:
        c.execute("update leaf_lines set line = ? where seq = ?", (lines[seq], other))
    from ledger_service.errors import JournalFault

    with pytest.raises(JournalFault, match=f"seq {seq} does not hash"):
        event_log.inclusion_proof(copy, event_id)
    other_id = dict(events)[other]
    assert check_inclusion(event_log.inclusion_proof(copy, other_id))
    engine = Engine(copy, clock=FixedClock())
    try:
        _key_id, key = new_key(engine, "auditor")
        client = create_app(copy, engine=engine).test_client()
        response = client.get(f"/v1/events/{event_id}/proof", headers={"Authorization": f"Bearer {key}"})
        assert (response.status_code, response.get_json()["rule"]) == (503, "journal.fault")
        response = client.get(f"/v1/events/{other_id}/proof", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200 and check_inclusion(response.get_json())
    finally:
        engine.dispose()


# -- what it catches ---------------------------------------------------------------------------------------------


def rechain_from(root: Path, day: date) -> None:
    """A consistent rewrite of `day`: move one member to another region, then recompute every
    prev and hash from there to the journal's end (the journal alone stays self-consistent)."""
    prev = None
    forged = False
    for path in Books(root).journal_files():
        if path.stem < day.isoformat():
            continue
        out = []
        for directive in parse_file(path)[0]:
            entry = from_beancount(directive)
            if prev is None:
                prev = entry.get("prev")
            bare = tuple((k, v) for k, v in entry.meta if k not in ("prev", "hash"))
            if isinstance(entry, Transaction):
                if not forged and entry.kind == "register" and entry.get("region"):
                    bare = tuple((k, "440305" if k == "region" else v) for k, v in bare)  # a valid code, not a demo one
                    forged = True
                entry = Transaction(entry.date, entry.payee, entry.narration, bare, entry.postings)
            else:
                entry = Price(entry.date, entry.number, bare)
            digest = entry_hash(entry, prev)
            out.append(render(with_meta(entry, [("prev", prev), ("hash", digest)])))
            prev = digest
        path.write_text("".join(out), encoding="utf-8")
    assert forged


def test_a_rechained_rewrite_is_caught_by_the_published_checkpoint(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    published = {d: json.loads((copy / "checkpoints" / f"{d}.json").read_text()) for d in CLOSED}
    kept = (copy / "checkpoints" / f"{CLOSED[3]}.json").read_bytes()
    rechain_from(copy, CLOSED[1])
    # the operator rebuilds every view: the views agree with the journal again, but the signed
    # checkpoints the chain booked still name the old roots (re-signing them too:
    # tests/test_signed_checkpoints.py), and verify names them
    views.rebuild(copy)
    rules = {f.rule for f in verify(copy, use_db=False).faults}
    assert {"checkpoint.head", "checkpoint.root"} & rules, rules
    latest = event_log.checkpoint(copy)
    assert latest != published[CLOSED[-1]]
    # a member who kept an older checkpoint asks for the consistency proof: it fails
    for day in CLOSED[1:-1]:
        proof = event_log.consistency_proof(copy, day, CLOSED[-1])
        assert check_consistency(proof["from"], proof["to"], proof["path"])  # the rewritten books' own pair
        assert not check_consistency(published[day], proof["to"], proof["path"]), day
    # a checkpoint before the rewritten day still holds
    proof = event_log.consistency_proof(copy, CLOSED[0], CLOSED[-1])
    assert check_consistency(published[CLOSED[0]], proof["to"], proof["path"])
    # the old checkpoint file kept in the books: verify names it
    (copy / "checkpoints" / f"{CLOSED[3]}.json").write_bytes(kept)
    faults = verify(copy, use_db=False).faults
    named = {(f.rule, Path(f.filename).name) for f in faults}
    assert ("checkpoint.root", f"{CLOSED[3]}.json") in named, [str(f) for f in faults]
    assert ("checkpoint.consistency", f"{CLOSED[3]}.json") in named, [str(f) for f in faults]


def test_verify_names_a_tampered_node_or_checkpoint(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    assert [f for f in verify(copy, use_db=False).faults] == []
    with sqlite3.connect(event_log.log_path(copy)) as c:
        c.execute("update nodes set hash = ? where level = 2 and \"index\" = 5", (b"\x00" * 32,))
    path = copy / "checkpoints" / f"{CLOSED[2]}.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "head": "0" * 64}, indent=2) + "\n")
    (copy / "checkpoints" / f"{OPEN_DAY}.json").write_text("{}")
    faults = event_log.compare(copy)
    text = [str(f) for f in faults]
    assert any(f.rule == "event_log.node" and "level 2 index 5" in f.message for f in faults), text
    assert any(f.rule == "checkpoint.file" and f.filename == str(path) for f in faults), text
    assert any(f.rule == "checkpoint.extra" and f"{OPEN_DAY}.json" in f.filename for f in faults), text
    assert {f.rule for f in verify(copy, use_db=False).faults} >= {"event_log.node", "checkpoint.file"}
    views.rebuild(copy)
    assert event_log.compare(copy) == [] and not (copy / "checkpoints" / f"{OPEN_DAY}.json").exists()


# -- storage reads per proof: O(log n) ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1_000, 100_000])
def test_a_proof_reads_o_log_n_nodes(tmp_path: Path, n: int):
    db = sqlite_engine(tmp_path / "log.sqlite", event_log._meta)
    rng = random.Random(n)
    leaves = [merkle.leaf_hash(rng.randbytes(32)) for _ in range(n)]
    with db.begin() as c:
        event_log.Store(c).append(0, [], leaves)
    memory = merkle.MemoryTree(leaves)
    selects: list[str] = []
    event.listen(db, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: selects.append(statement)
                 if statement.lstrip().upper().startswith("SELECT") else None)
    bound = 2 * math.ceil(math.log2(n))
    with db.connect() as c:
        store = event_log.Store(c)
        for _ in range(30):
            size = rng.randint(n // 2, n)
            index = rng.randrange(size)
            selects.clear()
            path = merkle.inclusion_path(store.node, index, size)
            assert len(selects) <= bound, (index, size, len(selects))
            assert merkle.verify_inclusion(leaves[index], index, size, path, memory.root(size))
            first = rng.randint(1, size)
            selects.clear()
            path = merkle.consistency_path(store.node, first, size)
            assert len(selects) <= bound + 2, (first, size, len(selects))
            assert merkle.verify_consistency(first, size, memory.root(first), memory.root(size), path)
        selects.clear()
        assert merkle.frontier_root(store.frontier(n)) == memory.root()
        assert len(selects) == bin(n).count("1")
    db.dispose()
    print(f"n={n}: at most {bound} reads per proof", os.getpid())
