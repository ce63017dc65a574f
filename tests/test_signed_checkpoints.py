"""The signed checkpoint (issue 12 §4, §6): the signing key, the checkpoint each close books in the
chain, key rotation, and what `verify` and the standalone verifier refuse.

The standalone verifier is run as a program (a subprocess), as a member or regulator would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger_books import CLOSED, OPEN_DAY, FixedClock, chain, copy_books, demo_books
from ledger_service import config, signing, views
from ledger_service.api.app import create_app
from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.entries import Price, Transaction, entry_hash, from_beancount, render, with_meta
from ledger_service.journal import Books, parse_file
from ledger_service.rules import checkpoints as cp
from ledger_service.rules import parse
from ledger_service.rules.events import Register
from ledger_service.views import event_log, liabilities, signed

VERIFIER = Path(__file__).resolve().parent.parent / "verifier" / "ledger_verify.py"


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


def run_verifier(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERIFIER), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def genesis_key(root: Path) -> str:
    return chain(root)[0].get("signing_key")


def object_of(entry: Transaction) -> dict:
    """The signed checkpoint object a `checkpoint` entry holds."""
    return cp.object_of(parse("checkpoint", dict(entry.meta), by_meta_key=True))


def write_json(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return path


# -- the key ---------------------------------------------------------------------------------------------------


def test_init_makes_a_private_key_and_names_its_public_half_in_genesis(books: Path):
    key_file = books / "keys" / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = signing.load(books)
    assert key is not None
    public = signing.public_hex(key)
    assert genesis_key(books) == public
    seed = key_file.read_text().strip()
    assert len(seed) == 64
    for path in Books(books).journal_files():  # the private half is never in the journal
        assert seed not in path.read_text(encoding="utf-8")


# -- one checkpoint per closed day, in the chain ------------------------------------------------------------------


def test_every_closed_day_books_one_signed_checkpoint_in_the_chain(books: Path):
    entries = chain(books)
    releases = {e.date: (int(e.get("seq")), e.get("hash")) for e in entries
                if isinstance(e, Transaction) and e.kind == "release"}
    booked = [e for e in entries if isinstance(e, Transaction) and e.kind == "checkpoint"]
    assert [date.fromisoformat(e.get("checkpoint_day")) for e in booked] == CLOSED
    public = genesis_key(books)
    for entry in booked:
        day = date.fromisoformat(entry.get("checkpoint_day"))
        assert entry.date > day and entry.postings == ()  # booked after the close, moves no balance
        obj = object_of(entry)
        assert (obj["last_seq"], obj["head"]) == releases[day]
        assert obj["log_size"] == obj["last_seq"]
        assert obj["key"] == public and signing.verify(public, obj, obj["signature"])
        # the file is exactly the entry's object
        assert (books / "checkpoints" / f"{day}.json").read_text() == signed.text_of(obj)
        # the roots are the event log's and the liabilities view's of that day
        log = event_log.stored_checkpoint(books, day)
        liab = json.loads(liabilities.checkpoint_path(books, day).read_text())
        assert obj["log_root"] == log.log_root
        assert obj["liabilities"] == {k: liab[k] for k in ("root", "holders", "sums", "indices")}
    assert verify(books, use_db=True).ok


def test_the_signed_checkpoint_verifies_with_the_standalone_program(books: Path, tmp_path: Path):
    path = books / "checkpoints" / f"{CLOSED[-1]}.json"
    public = genesis_key(books)
    done = run_verifier("checkpoint", path, "--key", public)
    assert done.returncode == 0 and "signed by the key you trust" in done.stdout, done.stdout + done.stderr
    # another key's signature over the same object: refused
    forged = json.loads(path.read_text())
    other = Ed25519PrivateKey.generate()
    forged["key"] = signing.public_hex(other)
    forged["signature"] = signing.sign(other, forged)
    done = run_verifier("checkpoint", write_json(tmp_path / "forged.json", forged), "--key", public)
    assert done.returncode == 1 and "FAIL: checkpoint.key" in done.stdout, done.stdout
    # a changed figure under the right key's old signature: refused
    changed = json.loads(path.read_text())
    changed["supply"]["circulating"] = "1.0000"
    done = run_verifier("checkpoint", write_json(tmp_path / "changed.json", changed), "--key", public)
    assert done.returncode == 1 and "FAIL: checkpoint.signature" in done.stdout, done.stdout


def test_the_pure_python_ed25519_agrees_with_the_library(books: Path):
    sys.path.insert(0, str(VERIFIER.parent))
    try:
        import ledger_verify as lv
    finally:
        sys.path.pop(0)
    obj = json.loads((books / "checkpoints" / f"{CLOSED[0]}.json").read_text())
    message, public, sig = lv.signed_bytes(obj), bytes.fromhex(obj["key"]), bytes.fromhex(obj["signature"])
    assert message == signing.signed_bytes(obj)
    assert lv.rfc8032_verify(public, message, sig) and lv.ed25519_verify(public, message, sig)
    assert not lv.rfc8032_verify(public, message + b" ", sig)
    assert not lv.rfc8032_verify(public, message, sig[:-1] + bytes([sig[-1] ^ 1]))


def test_proofs_from_the_api_carry_the_signed_checkpoint_and_verify(books: Path, tmp_path: Path):
    from api_helpers import new_key

    copy = copy_books(books, tmp_path / "books")
    engine = Engine(copy, clock=FixedClock())
    _id, key = new_key(engine, "storefront")
    client = create_app(copy, engine=engine).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    books = copy
    public = genesis_key(books)
    latest = client.get("/v1/checkpoints/latest", headers=headers)
    assert latest.status_code == 200 and latest.json["version"] == cp.CHECKPOINT_VERSION
    assert latest.json == json.loads((books / "checkpoints" / f"{CLOSED[-1]}.json").read_text())
    keys = client.get("/v1/signing-keys", headers=headers).json
    assert keys["genesis_key"] == keys["key_in_force"] == public and keys["rotations"] == []
    for role in ("finance", "auditor", "admin"):  # every role reads the keys; no key reads nothing
        _other_id, other = new_key(engine, role)
        assert client.get("/v1/signing-keys", headers={"Authorization": f"Bearer {other}"}).json == keys
    assert client.get("/v1/signing-keys").status_code == 401
    event_id = next(e.get("event") for e in chain(books) if isinstance(e, Transaction) and e.kind == "order")
    proof = client.get(f"/v1/events/{event_id}/proof", headers=headers).json
    done = run_verifier("inclusion", write_json(tmp_path / "inclusion.json", proof), "--key", public)
    assert done.returncode == 0, done.stdout + done.stderr
    consistency = client.get(f"/v1/checkpoints/consistency?from={CLOSED[1]}&to={CLOSED[-1]}", headers=headers).json
    done = run_verifier("consistency", write_json(tmp_path / "consistency.json", consistency), "--key", public)
    assert done.returncode == 0, done.stdout + done.stderr
    holder = next(e.get("member") for e in chain(books) if isinstance(e, Transaction) and e.kind == "register")
    hp = client.get(f"/v1/holders/{holder}/proof?date={CLOSED[-1]}", headers=headers).json
    assert hp["checkpoint"]["version"] == cp.CHECKPOINT_VERSION
    done = run_verifier("holder", write_json(tmp_path / "holder.json", hp), "--key", public)
    assert done.returncode == 0, done.stdout + done.stderr
    # the signed checkpoint names another liabilities root than the proof's: refused
    hp["checkpoint"]["liabilities"]["root"] = "0" * 64
    done = run_verifier("holder", write_json(tmp_path / "holder2.json", hp), "--key", public)
    assert done.returncode == 1, done.stdout


# -- what verify refuses --------------------------------------------------------------------------------------------


def test_verify_names_a_checkpoint_file_that_differs(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    path = copy / "checkpoints" / f"{CLOSED[2]}.json"
    obj = json.loads(path.read_text())
    obj["supply"]["pool_cny"] = "0.00"
    path.write_text(signed.text_of(obj))
    rules = {(f.rule, Path(f.filename).name) for f in verify(copy, use_db=False).faults}
    assert ("checkpoint.file", path.name) in rules, rules
    views.rebuild(copy)
    assert verify(copy, use_db=False).ok


def resign_chain(root: Path, change) -> None:
    """Rewrite the journal consistently: `change(entry) -> entry` on each entry, every prev and hash
    recomputed (the operator's forgery)."""
    prev = None
    for path in Books(root).journal_files():
        out = []
        for directive in parse_file(path)[0]:
            entry = from_beancount(directive)
            if prev is None:
                prev = entry.get("prev")
            bare = tuple((k, v) for k, v in entry.meta if k not in ("prev", "hash"))
            entry = (Transaction(entry.date, entry.payee, entry.narration, bare, entry.postings)
                     if isinstance(entry, Transaction) else Price(entry.date, entry.number, bare))
            entry = change(entry)
            digest = entry_hash(entry, prev)
            out.append(render(with_meta(entry, [("prev", prev), ("hash", digest)])))
            prev = digest
        path.write_text("".join(out), encoding="utf-8")


def test_verify_refuses_a_checkpoint_signed_by_another_key(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    other = Ed25519PrivateKey.generate()
    target = CLOSED[3].isoformat()

    def resign(entry):
        if isinstance(entry, Transaction) and entry.kind == "checkpoint" and entry.get("checkpoint_day") == target:
            obj = object_of(entry)
            obj["key"] = signing.public_hex(other)
            obj["signature"] = signing.sign(other, obj)
            meta = dict(entry.meta)
            meta.update(signing_key=obj["key"], signature=obj["signature"])
            return Transaction(entry.date, entry.payee, entry.narration, tuple(meta.items()), entry.postings)
        return entry

    resign_chain(copy, resign)
    views.rebuild(copy)
    faults = verify(copy, use_db=False).faults
    assert any(f.rule == "checkpoint.key" for f in faults), [str(f) for f in faults]


def test_a_consistent_rewrite_with_re_signed_checkpoints_is_caught_by_a_kept_checkpoint(books: Path, tmp_path: Path):
    """The operator holds the key: they can rewrite an old day, recompute every hash, every root and
    re-sign every checkpoint, and the books agree with themselves. A member who kept the signed
    checkpoint published before the rewrite refuses the new books' consistency proof."""
    copy = copy_books(books, tmp_path / "books")
    kept = json.loads((copy / "checkpoints" / f"{CLOSED[2]}.json").read_text())
    key = signing.load(copy)
    assert key is not None
    forged_day = CLOSED[1]
    state = {"forged": False}

    def rewrite(entry):
        if (not state["forged"] and isinstance(entry, Transaction) and entry.kind == "register"
                and entry.date == forged_day and entry.get("region")):
            state["forged"] = True
            meta = tuple((k, "440305" if k == "region" and v != "440305" else ("440306" if k == "region" else v)) for k, v in entry.meta)
            return Transaction(entry.date, entry.payee, entry.narration, meta, entry.postings)
        return entry

    resign_chain(copy, rewrite)
    assert state["forged"]
    # recompute every view and re-sign every checkpoint entry from the rewritten journal
    _resign_checkpoints(copy, key)
    assert verify(copy, use_db=False).ok, [str(f) for f in verify(copy, use_db=False).faults]
    proof = event_log.consistency_proof(copy, CLOSED[2], CLOSED[-1])
    path = write_json(tmp_path / "consistency.json", proof)
    done = run_verifier("consistency", path, "--key", genesis_key(copy))
    assert done.returncode == 0, done.stdout  # the rewritten books' own pair is consistent
    trusted = write_json(tmp_path / "kept.json", kept)
    done = run_verifier("consistency", path, "--trusted-from", trusted, "--key", genesis_key(copy))
    assert done.returncode == 1 and "differs from the trusted checkpoint" in done.stdout, done.stdout


def _resign_checkpoints(root: Path, key: Ed25519PrivateKey) -> None:
    """The forger's last step: rebuild the views, then rewrite each checkpoint entry with the new
    roots and a new signature, re-chaining after each (the roots of later days change with it)."""
    for _ in range(len(CLOSED)):
        views.rebuild(root)
        changed = {"done": False}

        def fix(entry):
            if changed["done"] or not (isinstance(entry, Transaction) and entry.kind == "checkpoint"):
                return entry
            day = date.fromisoformat(entry.get("checkpoint_day"))
            log_cp, liab = signed.inputs(root, day)
            old = object_of(entry)
            obj = cp.checkpoint_object(log_cp, liab, old["supply"], signing.public_hex(key))
            obj["signature"] = signing.sign(key, obj)
            if obj == old:
                return entry
            changed["done"] = True
            meta = dict(entry.meta)
            ev = cp.event_of(obj)
            meta.update(dict(ev.to_meta()))
            return Transaction(entry.date, entry.payee, entry.narration, tuple(meta.items()), entry.postings)

        resign_chain(root, fix)
        if not changed["done"]:
            break
    views.rebuild(root)


# -- rotation ----------------------------------------------------------------------------------------------------


def test_a_rotation_is_booked_signed_by_the_old_key_and_later_checkpoints_use_the_new(tmp_path: Path):
    root = tmp_path / "books"
    clock = FixedClock(date(2026, 3, 6))
    engine = Engine.init(root, config.load("seed-a"), start=date(2026, 3, 1), clock=clock)
    engine.submit(Register(member="m1"), day=date(2026, 3, 1))
    engine.close_days(date(2026, 3, 2))
    old = signing.public_hex(signing.load(root))
    booked = engine.rotate_signing_key()
    new = booked.entry.get("public_key")
    assert booked.kind == "signing_key" and booked.entry.get("previous_key") == old and new != old
    assert signing.public_hex(signing.load(root)) == new
    assert (root / "keys" / "retired" / f"{old}.key").is_file()
    rotation = cp.rotation_object(booked.day, old, new)
    assert signing.verify(old, rotation, booked.entry.get("signature"))
    engine.close_days()
    objects = [json.loads((root / "checkpoints" / f"{d}.json").read_text())
               for d in (date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 4))]
    assert [o["key"] for o in objects] == [old, old, new]
    assert verify(root, use_db=True).ok
    keys = engine.signing_keys()
    path = write_json(tmp_path / "keys.json", keys)
    done = run_verifier("keys", path, "--genesis-key", old)
    assert done.returncode == 0 and new in done.stdout, done.stdout + done.stderr
    # a rotation signed by the new key instead: the standalone program and verify refuse it
    forged = dict(keys)
    forged["rotations"] = [{**rotation, "signature": signing.sign(signing.load(root), rotation)}]
    done = run_verifier("keys", write_json(tmp_path / "forged.json", forged), "--genesis-key", old)
    assert done.returncode == 1 and "signature" in done.stdout, done.stdout
    engine.dispose()


def test_a_key_file_that_is_not_the_key_in_force_books_no_checkpoint(tmp_path: Path):
    root = tmp_path / "books"
    engine = Engine.init(root, config.load("seed-a"), start=date(2026, 3, 1), clock=FixedClock(date(2026, 3, 5)))
    signing.key_path(root).unlink()
    signing.create(root)  # a stranger's key in its place
    engine.close_days(date(2026, 3, 2))
    assert not (root / "checkpoints" / "2026-03-01.json").exists()
    faults = verify(root, use_db=False).faults
    assert {f.rule for f in faults} == {"checkpoint.missing"}, [str(f) for f in faults]
    engine.dispose()


# -- books made before signing ---------------------------------------------------------------------------------------


def test_books_made_before_signing_introduce_a_key_and_sign_from_then_on(tmp_path: Path, monkeypatch):
    from ledger_service import engine as engine_module
    from ledger_service.rules import close

    root = tmp_path / "books"
    unsigned_genesis = close.genesis
    monkeypatch.setattr(engine_module.rules, "genesis", lambda params, day, ctx, signing_key=None:
                        unsigned_genesis(params, day, ctx))
    monkeypatch.setattr(engine_module.Engine, "book_checkpoints", lambda self: [])
    engine = Engine.init(root, config.load("seed-a"), start=date(2026, 3, 1), clock=FixedClock(date(2026, 3, 6)))
    signing.key_path(root).unlink()
    engine.submit(Register(member="m1"), day=date(2026, 3, 1))
    engine.close_days(date(2026, 3, 3))
    monkeypatch.undo()
    assert genesis_key(root) is None and verify(root, use_db=True).ok
    engine = Engine(root, clock=FixedClock(date(2026, 3, 6)))
    engine.close_days()
    entries = chain(root)
    introduced = [e for e in entries if isinstance(e, Transaction) and e.kind == "signing_key"]
    checkpoints = [e.get("checkpoint_day") for e in entries if isinstance(e, Transaction) and e.kind == "checkpoint"]
    assert len(introduced) == 1 and introduced[0].get("previous_key") is None
    assert introduced[0].get("public_key") == signing.public_hex(signing.load(root))
    assert checkpoints == ["2026-03-05"]  # from the last closed day on; earlier days stay unsigned
    assert verify(root, use_db=True).ok, [str(f) for f in verify(root, use_db=True).faults]
    engine.dispose()


def test_the_open_day_has_no_checkpoint_and_the_api_answers_unsigned_for_old_days(books: Path):
    assert not (books / "checkpoints" / f"{OPEN_DAY}.json").exists()
    assert os.path.exists(books / "checkpoints" / f"{CLOSED[0]}.json")
    assert signed.published(books, CLOSED[0])["version"] == cp.CHECKPOINT_VERSION
    assert signed.published(books, None)["day"] == CLOSED[-1].isoformat()
    assert signed.read(books, OPEN_DAY - timedelta(days=100)) is None
