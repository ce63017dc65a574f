"""The standalone verifier (`verifier/ledger_verify.py`) against proofs built here, independently.

The proofs are built by the few lines below, written from the RFC text (RFC 6962 §2.1.1 MTH and
PATH, §2.1.2 PROOF/SUBPROOF; RFC 9162 §2.1 is the same tree) and pinned to the published
Certificate Transparency test vectors, over synthetic chained entries whose canonical texts
follow the README's "The hash (canonical form `ledger-entry-v1`)": each entry's hash is the
SHA-256 of its canonical text. The verifier runs as a subprocess, as a regulator would run it.
Nothing of `ledger_service` is imported here (but for the end-to-end test, which uses the CLI).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "verifier" / "ledger_verify.py"
ZEROS = "0" * 64
MAX = 20


# --- RFC 6962 §2.1, written from the RFC --------------------------------------------------------

def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) of §2.1: the empty string's hash, a leaf, or the hash of the two subtrees."""
    if not d:
        return sha256(b"")
    if len(d) == 1:
        return sha256(b"\x00" + d[0])
    k = largest_power_of_two_below(len(d))
    return sha256(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of §2.1.1: the audit path of leaf m, bottom to top."""
    if len(d) == 1:
        return []
    k = largest_power_of_two_below(len(d))
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of §2.1.2."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of §2.1.2: the consistency proof of the first m leaves with all n."""
    return subproof(m, d, True)


# The Certificate Transparency test vectors (google/trillian merkle/log_verifier_test.go).
CT_LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                        "606162636465666768696a6b6c6d6e6f"]]
CT_ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
H_96A2 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
H_5F08 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_6B47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_BC1A = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_CA85 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
H_0EBC = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
CT_INCLUSION = [(0, 8, [H_96A2, H_5F08, H_6B47]), (5, 8, [H_BC1A, H_CA85, CT_ROOTS[3]]),
                (2, 3, [CT_ROOTS[1]]), (1, 5, [CT_ROOTS[0], H_5F08, H_BC1A])]
CT_CONSISTENCY = [(1, 8, [H_96A2, H_5F08, H_6B47]), (6, 8, [H_0EBC, H_CA85, CT_ROOTS[3]]), (2, 5, [H_5F08, H_BC1A])]


def test_the_reference_tree_gives_the_published_vectors() -> None:
    assert mth([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert [mth(CT_LEAVES[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    for index, size, expected in CT_INCLUSION:
        assert [h.hex() for h in path(index, CT_LEAVES[:size])] == expected
    for m, n, expected in CT_CONSISTENCY:
        assert [h.hex() for h in proof(m, CT_LEAVES[:n])] == expected


def test_the_verifier_algorithms_accept_the_published_vectors() -> None:
    """The verifier's two RFC 9162 functions, on the CT vectors (leaf data of any length)."""
    spec = importlib.util.spec_from_file_location("ledger_verify_under_test", VERIFIER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for index, size, nodes in CT_INCLUSION:
        leaf = module.leaf_hash(CT_LEAVES[index])
        root = module.root_from_inclusion_path(index, size, leaf, [bytes.fromhex(h) for h in nodes])
        assert root.hex() == CT_ROOTS[size - 1]
    for m, n, nodes in CT_CONSISTENCY:
        old, new = module.roots_from_consistency_path(m, n, bytes.fromhex(CT_ROOTS[m - 1]),
                                                      [bytes.fromhex(h) for h in nodes])
        assert (old.hex(), new.hex()) == (CT_ROOTS[m - 1], CT_ROOTS[n - 1])


# --- Synthetic books: chained entries in the README's canonical form ----------------------------

def as_json(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def canonical_text(seq: int, prev: str, day: date, edit: str = "") -> tuple[str, str]:
    """(event id, canonical text) of a synthetic entry: every fifth one a price, else a transaction."""
    if seq > 1 and seq % 5 == 0:
        meta = {"kind": "price", "seq": str(seq), "pool_cny": f"{seq}00.00", "circulating_sp": f"{seq}.0000"}
        lines = ["ledger-entry-v1", "prev:" + prev, "type:price", "date:" + day.isoformat(),
                 f"price:SP 1.0{seq:07d} CNY"]
        lines += [f"meta:{k}={as_json(v)}" for k, v in sorted(meta.items())]
        return f"P{seq:09d}", "\n".join(lines)
    event = f"E{seq:09d}"
    meta = {"event": event, "kind": "order" if seq > 1 else "genesis", "seq": str(seq), "buyer": "张三",
            "note": 'a "quoted" \\ value' + edit, "postings": "2"}
    lines = ["ledger-entry-v1", "prev:" + prev, "type:transaction", "date:" + day.isoformat(), "flag:*",
             "payee:" + as_json("order"), "narration:" + as_json(f"order o{seq}: 1000.00 CNY"),
             "tags:", "links:"]
    lines += [f"meta:{k}={as_json(v)}" for k, v in sorted(meta.items())]
    lines += ["posting:Liabilities:Holders:SP 100.0000 SP", 'pmeta:holder="s1"', 'pmeta:leg="deduct"',
              "posting:Equity:SP:Burned -100.0000 SP", 'pmeta:leg="burn"']
    return event, "\n".join(lines)


def make_chain(n: int, edit_seq: int = 0) -> list[dict]:
    """n chained entries; `edit_seq` rewrites that entry and re-chains every later one."""
    chain, prev = [], ZEROS
    for seq in range(1, n + 1):
        day = date(2026, 3, 1) + timedelta(days=seq)
        event, text = canonical_text(seq, prev, day, edit=" (rewritten)" if seq == edit_seq else "")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        chain.append({"event_id": event, "seq": seq, "entry_hash": digest, "prev": prev, "canonical": text})
        prev = digest
    return chain


def leaves(chain: list[dict], size: int) -> list[bytes]:
    """Leaf data d_i: the 32 raw bytes of the entry hash of seq i + 1."""
    return [bytes.fromhex(e["entry_hash"]) for e in chain[:size]]


def checkpoint(chain: list[dict], size: int) -> dict:
    return {"version": "ledger-checkpoint-v1", "day": (date(2026, 3, 1) + timedelta(days=size)).isoformat(),
            "last_seq": size, "head": chain[size - 1]["entry_hash"], "log_size": size,
            "log_root": mth(leaves(chain, size)).hex()}


def inclusion(chain: list[dict], seq: int, size: int) -> dict:
    entry = chain[seq - 1]
    return {"version": "ledger-inclusion-v1", "event_id": entry["event_id"], "seq": seq,
            "entry_hash": entry["entry_hash"], "prev": entry["prev"], "canonical": entry["canonical"],
            "leaf_index": seq - 1, "checkpoint": checkpoint(chain, size),
            "path": [h.hex() for h in path(seq - 1, leaves(chain, size))]}


def consistency(chain: list[dict], m: int, n: int) -> dict:
    return {"version": "ledger-consistency-v1", "from": checkpoint(chain, m), "to": checkpoint(chain, n),
            "path": [h.hex() for h in proof(m, leaves(chain, n))] if m < n else []}


CHAIN = make_chain(MAX)


def write(tmp_path: Path, document: object, name: str = "proof.json") -> str:
    file = tmp_path / name
    file.write_text(document if isinstance(document, str) else json.dumps(document, ensure_ascii=False),
                    encoding="utf-8")
    return str(file)


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(VERIFIER), *args], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


def assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert (done.returncode, done.stdout[:4]) == (0, "OK: "), done.stdout + done.stderr


def assert_fails(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("FAIL: "), done.stdout
    for word in words:
        assert word in done.stdout, done.stdout


def flip_bit(hex_digest: str, bit: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_digest))
    raw[bit // 8] ^= 1 << (bit % 8)
    return raw.hex()


# --- It accepts every honest proof --------------------------------------------------------------

def test_every_index_of_every_size_up_to_20_verifies(tmp_path: Path) -> None:
    for size in range(1, MAX + 1):
        for seq in range(1, size + 1):
            document = inclusion(CHAIN, seq, size)
            done = verify("inclusion", write(tmp_path, document),
                          "--checkpoint", write(tmp_path, document["checkpoint"], "trusted.json"))
            assert_ok(done)
            assert f"leaf {seq - 1} of the log of {size} entries" in done.stdout


def test_every_pair_of_sizes_up_to_20_is_consistent(tmp_path: Path) -> None:
    for n in range(1, MAX + 1):
        for m in range(1, n + 1):
            document = consistency(CHAIN, m, n)
            assert_ok(verify("consistency", write(tmp_path, document),
                             "--trusted-from", write(tmp_path, document["from"], "trusted.json")))


def test_a_checkpoint_is_well_formed(tmp_path: Path) -> None:
    done = verify("checkpoint", write(tmp_path, checkpoint(CHAIN, 7)))
    assert_ok(done)
    assert "log_size 7" in done.stdout


# --- It refuses every forged or damaged proof ---------------------------------------------------

def test_a_flipped_bit_in_any_path_node_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 6, 13)
    assert len(good["path"]) == 4
    for i in range(len(good["path"])):
        for bit in (0, 255):
            forged = copy.deepcopy(good)
            forged["path"][i] = flip_bit(forged["path"][i], bit)
            assert_fails(verify("inclusion", write(tmp_path, forged)), "path", "log_root")


def test_a_dropped_or_added_sibling_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 6, 13)
    for i in range(len(good["path"])):
        forged = copy.deepcopy(good)
        del forged["path"][i]
        assert_fails(verify("inclusion", write(tmp_path, forged)), "path")
    for extra in (good["checkpoint"]["log_root"], ZEROS):
        assert_fails(verify("inclusion", write(tmp_path, {**good, "path": good["path"] + [extra]})), "path")
        assert_fails(verify("inclusion", write(tmp_path, {**good, "path": [extra] + good["path"]})), "path")


def test_a_wrong_leaf_index_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 6, 13)
    for wrong in (4, 6, 7, 12, 13, 20):
        assert_fails(verify("inclusion", write(tmp_path, {**good, "leaf_index": wrong})), "leaf_index")


def test_a_proof_of_another_seq_is_refused(tmp_path: Path) -> None:
    """The path is right for leaf 5 but the seq (and index) claimed are another entry's."""
    good = inclusion(CHAIN, 6, 13)
    assert_fails(verify("inclusion", write(tmp_path, {**good, "seq": 7, "leaf_index": 6})), "seq", "meta:seq")


def test_an_edited_canonical_text_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 6, 13)
    forged = {**good, "canonical": good["canonical"].replace('"张三"', '"李四"')}
    assert_fails(verify("inclusion", write(tmp_path, forged)), "entry_hash", "SHA-256")


def test_an_edited_entry_with_its_hash_recomputed_is_not_in_the_log(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 6, 13)
    text = good["canonical"].replace('"张三"', '"李四"')
    forged = {**good, "canonical": text, "entry_hash": hashlib.sha256(text.encode()).hexdigest()}
    assert_fails(verify("inclusion", write(tmp_path, forged)), "path", "log_root")


def test_a_prev_or_seq_or_id_that_the_canonical_text_does_not_say_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 6, 13)
    assert_fails(verify("inclusion", write(tmp_path, {**good, "prev": CHAIN[1]["entry_hash"]})), "prev")
    assert_fails(verify("inclusion", write(tmp_path, {**good, "event_id": "E000000007"})), "event_id")
    price = inclusion(CHAIN, 10, 13)
    assert_ok(verify("inclusion", write(tmp_path, price)))
    assert_fails(verify("inclusion", write(tmp_path, {**price, "event_id": "E000000010"})), "event_id")


def test_an_entry_after_the_checkpoint_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 13, 13)
    forged = {**good, "checkpoint": checkpoint(CHAIN, 12)}
    assert_fails(verify("inclusion", write(tmp_path, forged)), "leaf_index", "log_size")


def test_a_checkpoint_other_than_the_trusted_one_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 6, 13)
    trusted = write(tmp_path, checkpoint(CHAIN, 13), "trusted.json")
    assert_ok(verify("inclusion", write(tmp_path, good), "--checkpoint", trusted))
    # A consistent proof against another checkpoint (of a larger log) is not a proof against the trusted one.
    other = inclusion(CHAIN, 6, 14)
    assert_ok(verify("inclusion", write(tmp_path, other)))
    assert_fails(verify("inclusion", write(tmp_path, other), "--checkpoint", trusted),
                 "differs from the trusted checkpoint", "log_root")
    # The same size and root but another day: still not the trusted checkpoint.
    renamed = copy.deepcopy(good)
    renamed["checkpoint"]["day"] = "2027-01-01"
    assert_fails(verify("inclusion", write(tmp_path, renamed), "--checkpoint", trusted), "day")


def test_a_forged_checkpoint_root_or_head_is_refused(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 13, 13)
    root = copy.deepcopy(good)
    root["checkpoint"]["log_root"] = flip_bit(root["checkpoint"]["log_root"])
    assert_fails(verify("inclusion", write(tmp_path, root)), "log_root")
    head = copy.deepcopy(good)
    head["checkpoint"]["head"] = CHAIN[11]["entry_hash"]
    assert_fails(verify("inclusion", write(tmp_path, head)), "checkpoint.head")


def test_a_consistency_proof_against_a_rewritten_history_is_refused(tmp_path: Path) -> None:
    """The operator rewrites entry 4 and re-chains everything after it (every hash recomputed)."""
    rewritten = make_chain(MAX, edit_seq=4)
    assert rewritten[3]["entry_hash"] != CHAIN[3]["entry_hash"]
    assert all(a["entry_hash"] != b["entry_hash"] for a, b in zip(rewritten[3:], CHAIN[3:], strict=True))
    # RFC 9162 §2.1.4.2 finds the old root wrong when the old size is not a power of two, else
    # (the old root then starts the path) the new one.
    for size, caught in ((6, "from.log_root"), (8, "to.log_root")):
        published = checkpoint(CHAIN, size)                 # the auditor kept this one
        trusted = write(tmp_path, published, "trusted.json")
        # The rewritten books' own proof is consistent in itself, but its `from` is not the published one.
        own = consistency(rewritten, size, 20)
        assert_ok(verify("consistency", write(tmp_path, own)))
        assert_fails(verify("consistency", write(tmp_path, own), "--trusted-from", trusted),
                     "from differs from the trusted checkpoint", "log_root", "head")
        # Presented with the published `from`, the rewritten log's path does not join the two roots.
        forged = {**own, "from": published}
        assert_fails(verify("consistency", write(tmp_path, forged), "--trusted-from", trusted), caught,
                     "does not extend")
        # A rewrite after the published size is no rewrite of it: the proof holds.
        later = make_chain(MAX, edit_seq=size + 1)
        assert_ok(verify("consistency", write(tmp_path, consistency(later, size, 20)), "--trusted-from", trusted))


def test_a_damaged_consistency_proof_is_refused(tmp_path: Path) -> None:
    good = consistency(CHAIN, 6, 13)
    assert_ok(verify("consistency", write(tmp_path, good)))
    for i in range(len(good["path"])):
        flipped = copy.deepcopy(good)
        flipped["path"][i] = flip_bit(flipped["path"][i], 7)
        assert_fails(verify("consistency", write(tmp_path, flipped)), "log_root")
        dropped = copy.deepcopy(good)
        del dropped["path"][i]
        assert_fails(verify("consistency", write(tmp_path, dropped)))
    new_root = copy.deepcopy(good)
    new_root["to"]["log_root"] = flip_bit(new_root["to"]["log_root"])
    assert_fails(verify("consistency", write(tmp_path, new_root)), "to.log_root")
    assert_fails(verify("consistency", write(tmp_path, {**good, "path": []})), "path")
    backwards = {**good, "from": good["to"], "to": good["from"]}
    assert_fails(verify("consistency", write(tmp_path, backwards)), "to.")
    same = consistency(CHAIN, 9, 9)
    assert_fails(verify("consistency", write(tmp_path, {**same, "path": [ZEROS]})), "path", "empty")
    assert_fails(verify("consistency", write(tmp_path, {**same, "to": checkpoint(make_chain(9, edit_seq=2), 9)})),
                 "to.log_root")


def test_a_malformed_checkpoint_fails_naming_the_field(tmp_path: Path) -> None:
    good = checkpoint(CHAIN, 7)
    cases = [({"log_size": 8}, "log_size"), ({"version": "ledger-checkpoint-v3"}, "version"),
             ({"head": good["head"].upper()}, "head"), ({"log_root": good["log_root"][:-2]}, "log_root"),
             ({"day": "2026-02-30"}, "day"), ({"last_seq": 0, "log_size": 0}, "last_seq"),
             ({"extra": "x"}, "extra")]
    for change, field in cases:
        assert_fails(verify("checkpoint", write(tmp_path, {**good, **change})), field)


def test_unreadable_input_exits_2_without_a_traceback(tmp_path: Path) -> None:
    good = inclusion(CHAIN, 3, 5)
    without_seq = {k: v for k, v in good.items() if k != "seq"}
    cases = ["{not json", "[]", "", json.dumps(without_seq), json.dumps({**good, "seq": "3"}),
             json.dumps({**good, "seq": True}), json.dumps({**good, "path": "ab"}),
             json.dumps({**good, "path": [1]}), json.dumps(good)[:-1] + ', "seq": 3}',
             json.dumps({**good, "checkpoint": {**good["checkpoint"], "log_size": 5.0}}),
             json.dumps(good).replace('"leaf_index": 2', '"leaf_index": NaN')]
    for text in cases:
        done = verify("inclusion", write(tmp_path, text))
        assert done.returncode == 2, (text, done.stdout, done.stderr)
        assert done.stderr.startswith("ERROR: "), done.stderr
    assert verify("inclusion", str(tmp_path / "absent.json")).returncode == 2
    bad_bytes = tmp_path / "bytes.json"
    bad_bytes.write_bytes(b"\xff\xfe{")
    assert verify("consistency", str(bad_bytes)).returncode == 2
    assert verify("checkpoint", write(tmp_path, "{}")).returncode == 2
    assert verify().returncode == 2                                 # usage
    assert verify("inclusion", write(tmp_path, good), "--checkpoint", write(tmp_path, "[1]", "t.json")).returncode == 2


# --- It depends on nothing but the standard library ---------------------------------------------

def test_the_verifier_imports_only_the_standard_library() -> None:
    """The standard library only, but for `cryptography`, imported inside `ed25519_verify` alone (under
    a try whose ImportError falls back to the program's own RFC 8032 code)."""
    tree = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    outside_signature = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "ed25519_verify")]
    signature_function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "ed25519_verify")
    signature_imports = {(n.module or "").split(".")[0] for n in ast.walk(signature_function)
                         if isinstance(n, ast.ImportFrom)}
    assert signature_imports == {"cryptography"}
    imported = set()
    for node in (n for top in outside_signature for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import"
            imported.add((node.module or "").split(".")[0])
    assert imported, "no import found"
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)
    assert not imported & {"ledger_service", "beancount", "beanquery"}
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not calls & {"__import__", "exec", "eval"}


# --- End to end: the books' own proofs ----------------------------------------------------------

def ledger_service_cli() -> list[str] | None:
    """The `ledger-service` command, when it has `prove` (issue 12 §5); else None."""
    script = shutil.which("ledger-service", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "ledger_service.cli"]
    try:
        done = subprocess.run([*command, "prove", "--help"], capture_output=True, text=True, timeout=120)
    except OSError:
        return None
    return command if done.returncode == 0 else None


def ids_by_seq(books: Path) -> dict[int, str]:
    """Each chained entry's id, read from the day files as text: its `event`, or `P` and its seq for a price."""
    ids: dict[int, str] = {}
    for day_file in sorted((books / "journal").glob("*/*.beancount"), key=lambda p: p.name):
        for block in day_file.read_text(encoding="utf-8").split("\n\n"):
            seq = re.search(r'^  seq: "(\d+)"$', block, re.M)
            if seq:
                event = re.search(r'^  event: "(E\d+)"$', block, re.M)
                ids[int(seq.group(1))] = event.group(1) if event else f"P{int(seq.group(1)):09d}"
    return ids


def test_the_books_own_proofs_verify(tmp_path: Path) -> None:
    """Demo books, `ledger-service prove event|consistency`, and this verifier accepts what they write."""
    cli = ledger_service_cli()
    assert cli is not None, "`ledger-service prove` is not available"
    books = tmp_path / "books"
    subprocess.run([*cli, "demo", "--books", str(books), "--members", "30", "--merchants", "4", "--days", "3"],
                   check=True, capture_output=True, timeout=600)
    # The event-log checkpoints (YYYY-MM-DD.json), not the liabilities ones (YYYY-MM-DD.liabilities.json).
    kept = sorted(p for p in (books / "checkpoints").glob("*.json") if not p.name.endswith(".liabilities.json"))
    assert len(kept) >= 2, kept
    for file in kept:
        assert_ok(verify("checkpoint", str(file)))
    first, last = json.loads(kept[0].read_text()), json.loads(kept[-1].read_text())
    ids = ids_by_seq(books)
    assert len(ids) >= last["last_seq"]
    # The genesis, the first price, an entry in the middle, the last entry of each checkpoint.
    prices = [seq for seq, event in ids.items() if event.startswith("P")]
    for cp, file in ((first, kept[0]), (last, kept[-1])):
        for seq in sorted({1, prices[0], (cp["last_seq"] + 1) // 2, cp["last_seq"]}):
            out = tmp_path / f"event-{cp['day']}-{seq}.json"
            subprocess.run([*cli, "prove", "event", "--books", str(books), ids[seq], "--checkpoint", cp["day"],
                            "--out", str(out)], check=True, capture_output=True, timeout=120)
            done = verify("inclusion", str(out), "--checkpoint", str(file))
            assert_ok(done)
            assert f"event {ids[seq]} (seq {seq}" in done.stdout
    out = tmp_path / "consistency.json"
    subprocess.run([*cli, "prove", "consistency", "--books", str(books), "--from", first["day"], "--to", last["day"],
                    "--out", str(out)], check=True, capture_output=True, timeout=120)
    assert_ok(verify("consistency", str(out), "--trusted-from", str(kept[0])))
    # A checkpoint kept from other books is not these books' checkpoint: a signed one's signature no
    # longer holds over the changed root; an unsigned one differs from the proof's.
    other = {**first, "log_root": flip_bit(first["log_root"])}
    done = verify("consistency", str(out), "--trusted-from", write(tmp_path, other, "other.json"))
    if first.get("signature"):
        assert_fails(done, "trusted checkpoint.signature")
    else:
        assert_fails(done, "from differs from the trusted checkpoint", "log_root")
    if first.get("signature"):  # a copy re-signed by another key is refused when the books' key is given
        assert_fails(verify("consistency", str(out), "--trusted-from", str(kept[0]), "--key", "ab" * 32), "key")
