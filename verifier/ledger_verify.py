#!/usr/bin/env python3
"""ledger_verify — check the ledger-service books' event-log proofs, trusting nothing.

This one file is the whole verifier. It uses the Python standard library only (3.9 or
later) and imports nothing of the ledger service or Beancount, so what it accepts follows
from the text below, the README's canonical form and RFC 9162 alone. Usage:

    python ledger_verify.py checkpoint  CHECKPOINT.json
    python ledger_verify.py inclusion   PROOF.json [--checkpoint TRUSTED_CHECKPOINT.json]
    python ledger_verify.py consistency PROOF.json [--trusted-from TRUSTED_CHECKPOINT.json]

Exit codes: 0 and `OK: ...` when every check passes; 1 and `FAIL: <field or check>: <why>`
when a check fails; 2 and `ERROR: ...` (on stderr) when the input cannot be read: a file
that is missing or is not JSON, a JSON document that is not an object, a field missing or
of the wrong JSON type (a string where a number is due, ...), a key written twice.

What a proof proves, and what it does not: an inclusion proof shows that an entry (its
canonical text) is leaf `seq - 1` of the log whose root a checkpoint names; a consistency
proof shows that the log of a later checkpoint starts with the whole log of an earlier one
(no entry of the earlier log was changed, removed or reordered). Both are only as good as
the checkpoint you compare them with: pass one you obtained independently (published
earlier, received from the regulator, ...) with --checkpoint / --trusted-from. Until the
books sign their checkpoints (see "Signatures" below), a checkpoint read from the same
place as the proof proves only that the proof is internally consistent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from datetime import date
from typing import Any

Doc = dict[str, Any]  # a JSON object as read

CHECKPOINT_VERSION = "ledger-checkpoint-v1"
INCLUSION_VERSION = "ledger-inclusion-v1"
CONSISTENCY_VERSION = "ledger-consistency-v1"
CANONICAL_VERSION = "ledger-entry-v1"  # the first line of every entry's canonical text
ZEROS = "0" * 64  # the `prev` of seq 1, the genesis entry
HEX64 = re.compile(r"[0-9a-f]{64}")  # a SHA-256 digest as the books write it: lowercase hex
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

# The fields of each document and their JSON types (the formats: verifier/README.md).
CHECKPOINT_FIELDS: dict[str, type] = {
    "version": str, "day": str, "last_seq": int, "head": str, "log_size": int, "log_root": str}
INCLUSION_FIELDS: dict[str, type] = {
    "version": str, "event_id": str, "seq": int, "entry_hash": str, "prev": str, "canonical": str,
    "leaf_index": int, "checkpoint": dict, "path": list}
CONSISTENCY_FIELDS: dict[str, type] = {"version": str, "from": dict, "to": dict, "path": list}


class Failed(Exception):
    """A check failed: exit 1. The message names the field or the check."""


class Unreadable(Exception):
    """The input cannot be read as the document it should be: exit 2."""


# ---------------------------------------------------------------------------------------
# The Merkle tree of the event log: RFC 9162 §2.1 (the same tree as RFC 6962 §2.1)
#
#   leaf_hash(d)    = SHA-256(0x00 || d)
#   node_hash(l, r) = SHA-256(0x01 || l || r)
#   MTH({})         = SHA-256("")
#   MTH({d0})       = leaf_hash(d0)
#   MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n
#
# Leaf i (0-based, i = seq - 1) holds d_i = the 32 raw bytes of the hash of the chained entry
# of seq i + 1, in chain order. A checkpoint's log_root is MTH of its first log_size leaves.
# ---------------------------------------------------------------------------------------

def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_path(leaf_index: int, tree_size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """The root that `path` leads to from `leaf` (a leaf hash): RFC 9162 §2.1.3.2.

    The caller compares the result with the root it trusts (step 5's second half).
    """
    # Step 1: the index must lie inside the tree.
    if not 0 <= leaf_index < tree_size:
        raise Failed(f"leaf_index: {leaf_index} is not below the tree size {tree_size}")
    fn, sn = leaf_index, tree_size - 1  # step 2
    r = leaf                            # step 3
    for p in path:                      # step 4
        if sn == 0:                     # 4a: the path is longer than the tree is high
            raise Failed("path: more nodes than the tree has levels above this leaf")
        if fn & 1 or fn == sn:          # 4b: p is a left sibling
            r = node_hash(p, r)
            if not fn & 1:              # 4b.ii: skip the levels where this node has no sibling
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:                           # p is a right sibling
            r = node_hash(r, p)
        fn >>= 1                        # 4c
        sn >>= 1
    if sn != 0:                         # step 5, first half: the path must reach the top
        raise Failed("path: fewer nodes than the tree has levels above this leaf")
    return r


def roots_from_consistency_path(first: int, second: int, first_hash: bytes, path: list[bytes]) -> tuple[bytes, bytes]:
    """(old root, new root) that `path` leads to, for 0 < first < second: RFC 9162 §2.1.4.2.

    The caller compares them with the two checkpoints' roots (step 7).
    """
    if not 0 < first < second:
        raise Failed(f"sizes: a consistency path needs 0 < first < second, found {first} and {second}")
    if not path:                                           # step 1
        raise Failed("path: empty, but the sizes differ")
    if first & (first - 1) == 0:                           # step 2: first is a power of two,
        path = [first_hash] + path                         # the old tree is a node of the new one
    fn, sn = first - 1, second - 1                         # step 3
    while fn & 1:                                          # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]                                      # step 5
    for c in path[1:]:                                     # step 6
        if sn == 0:                                        # 6a
            raise Failed("path: more nodes than the trees have levels")
        if fn & 1 or fn == sn:                             # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1                                           # 6c
        sn >>= 1
    if sn != 0:                                            # step 7, last check
        raise Failed("path: fewer nodes than the trees have levels")
    return fr, sr


# ---------------------------------------------------------------------------------------
# Reading the documents
# ---------------------------------------------------------------------------------------

def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> Doc:
    seen: Doc = {}
    for key, value in pairs:
        if key in seen:
            raise Unreadable(f"the key {key!r} is written twice")
        seen[key] = value
    return seen


def _no_constants(name: str) -> Any:
    raise Unreadable(f"{name} is not a JSON number")


def load_json(path: str) -> Doc:
    """A JSON object read from a file: no duplicate key, no NaN or Infinity."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise Unreadable(f"{path}: cannot be read: {error}") from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise Unreadable(f"{path}: not JSON: {error}") from None
    except Unreadable as error:
        raise Unreadable(f"{path}: {error}") from None
    except RecursionError:
        raise Unreadable(f"{path}: nested too deeply") from None
    if not isinstance(document, dict):
        raise Unreadable(f"{path}: not a JSON object")
    return document


def require_fields(document: Doc, fields: dict[str, type], where: str) -> None:
    """Every field present with its JSON type (a JSON true is not a number here): else exit 2."""
    for name, kind in fields.items():
        if name not in document:
            raise Unreadable(f"{where}: the field {name!r} is missing")
        value = document[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            expected = {str: "a string", int: "an integer", dict: "an object", list: "an array"}[kind]
            raise Unreadable(f"{where}: the field {name!r} is not {expected}")


def load_proof(path: str, version: str, fields: dict[str, type]) -> Doc:
    """A proof document: its version first (a proof of another kind fails here, naming it), then its fields."""
    proof = load_json(path)
    require_fields(proof, {"version": str}, path)
    if proof["version"] != version:
        raise Failed(f"version: {proof['version']!r}, expected {version!r}")
    require_fields(proof, fields, path)
    return proof


def digest(value: str, field: str) -> bytes:
    """A 64-digit lowercase hex SHA-256, as 32 bytes."""
    if not HEX64.fullmatch(value):
        raise Failed(f"{field}: not 64 lowercase hex digits: {value!r}")
    return bytes.fromhex(value)


def path_nodes(path: list[Any], field: str) -> list[bytes]:
    nodes = []
    for i, node in enumerate(path):
        if not isinstance(node, str):
            raise Unreadable(f"{field}[{i}] is not a string")
        nodes.append(digest(node, f"{field}[{i}]"))
    return nodes


# ---------------------------------------------------------------------------------------
# Checkpoints (the format: verifier/README.md)
# ---------------------------------------------------------------------------------------

def check_checkpoint(cp: Doc, where: str) -> None:
    """A checkpoint's well-formedness: version, fields, hex digests, log_size == last_seq."""
    require_fields(cp, {"version": str}, where)
    if cp["version"] != CHECKPOINT_VERSION:
        raise Failed(f"{where}.version: {cp['version']!r}, expected {CHECKPOINT_VERSION!r}")
    require_fields(cp, CHECKPOINT_FIELDS, where)
    if "signature" in cp:
        check_signature(cp, where)
    extra = sorted(set(cp) - set(CHECKPOINT_FIELDS))
    if extra:
        raise Failed(f"{where}: unexpected field(s) {', '.join(extra)} (a {CHECKPOINT_VERSION} has exactly "
                     f"{', '.join(CHECKPOINT_FIELDS)})")
    day = cp["day"]
    try:
        if not DAY.fullmatch(day):
            raise ValueError
        date.fromisoformat(day)
    except ValueError:
        raise Failed(f"{where}.day: not a date YYYY-MM-DD: {day!r}") from None
    last_seq, log_size = cp["last_seq"], cp["log_size"]
    if last_seq < 1:
        raise Failed(f"{where}.last_seq: {last_seq}, but the chain starts at seq 1 (the genesis entry)")
    if log_size != last_seq:
        raise Failed(f"{where}.log_size: {log_size} != last_seq {last_seq} (one leaf per chained entry)")
    digest(cp["head"], f"{where}.head")
    digest(cp["log_root"], f"{where}.log_root")


def check_same_checkpoint(given: Doc, trusted: Doc, where: str) -> None:
    """The proof's checkpoint must be, field for field, the one the user trusts."""
    differ = [name for name in sorted(set(given) | set(trusted)) if given.get(name) != trusted.get(name)]
    if differ:
        shown = "; ".join(f"{name}: proof has {given.get(name)!r}, trusted has {trusted.get(name)!r}"
                          for name in differ)
        raise Failed(f"{where} differs from the trusted checkpoint: {shown}")


# ---- Signatures: NOT YET IMPLEMENTED --------------------------------------------------
# The books do not sign their checkpoints yet (issue 12 §4). When they do, the Ed25519
# signature check goes here, and only here: `cryptography` is imported inside this function
# (the one dependency outside the standard library, loaded only for a signed checkpoint),
# the public key is read from the genesis entry, and every other check stays as it is.
def check_signature(cp: Doc, where: str) -> None:
    raise Unreadable(f"{where}: a signed checkpoint; this verifier does not check signatures yet")
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# The entry: README "The hash (canonical form `ledger-entry-v1`)"
#
# The canonical text is the lines `ledger-entry-v1`, `prev:<64 hex>`, `type:transaction` or
# `type:price`, `date:...`, ..., then one `meta:<key>=<JSON string>` line per metadata key
# (sorted; every key but prev and hash), then the postings; joined by "\n", UTF-8. The
# entry's hash is SHA-256 of those bytes. Only the lines this verifier relies on are parsed.
# ---------------------------------------------------------------------------------------

def canonical_meta(lines: list[str], key: str) -> str | None:
    """The value of the entry metadata line `meta:<key>=<JSON string>`, or None when absent."""
    found = [line[len(f"meta:{key}="):] for line in lines if line.startswith(f"meta:{key}=")]
    if not found:
        return None
    if len(found) > 1:
        raise Failed(f"canonical: the line meta:{key}= is written {len(found)} times")
    try:
        value = json.loads(found[0])
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, str):
        raise Failed(f"canonical: meta:{key}= is not a JSON string: {found[0]!r}")
    return value


def check_entry(proof: Doc) -> bytes:
    """The entry's canonical text against its hash, prev, seq and id; returns the 32-byte hash."""
    entry_hash = digest(proof["entry_hash"], "entry_hash")
    prev = proof["prev"]
    digest(prev, "prev")
    seq, canonical = proof["seq"], proof["canonical"]
    if hashlib.sha256(canonical.encode("utf-8")).digest() != entry_hash:
        raise Failed("entry_hash: SHA-256 of the canonical text is "
                     f"{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}, not {entry_hash.hex()}")
    lines = canonical.split("\n")
    if lines[0] != CANONICAL_VERSION:
        raise Failed(f"canonical: the first line is {lines[0]!r}, expected {CANONICAL_VERSION!r}")
    if len(lines) < 2 or lines[1] != "prev:" + prev:
        raise Failed(f"prev: the canonical text's line prev: is {(lines + [''])[1]!r}, expected 'prev:{prev}'")
    if len(lines) < 3 or lines[2] not in ("type:transaction", "type:price"):
        raise Failed(f"canonical: the third line is {(lines + ['', ''])[2]!r}, expected type:transaction or type:price")
    written_seq = canonical_meta(lines, "seq")
    if written_seq != str(seq) or seq < 1:
        raise Failed(f"seq: the proof says {seq}, the canonical text's meta:seq says {written_seq!r}")
    if seq == 1 and prev != ZEROS:
        raise Failed("prev: seq 1 (the genesis entry) must have 64 zeros as prev")
    event = canonical_meta(lines, "event")
    # A transaction's id is its `event` metadata; a price's is `P` and its 9-digit seq (README).
    expected_id = event if event is not None else f"P{seq:09d}" if lines[2] == "type:price" else None
    if proof["event_id"] != expected_id:
        raise Failed(f"event_id: the proof says {proof['event_id']!r}, the canonical text gives {expected_id!r}")
    return entry_hash


# ---------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------

def note_unchecked(document: Doc, known: dict[str, type], where: str) -> None:
    for name in sorted(set(document) - set(known)):
        print(f"note: {where}: field {name!r} is not part of the proof and was not checked", file=sys.stderr)


def cmd_checkpoint(args: argparse.Namespace) -> str:
    cp = load_json(args.file)
    check_checkpoint(cp, "checkpoint")
    return (f"checkpoint {cp['day']} is well-formed: log_size {cp['log_size']}, "
            f"log_root {cp['log_root']}, head {cp['head']} (signature: none, not checked)")


def load_trusted(path: str | None) -> Doc | None:
    if path is None:
        return None
    trusted = load_json(path)
    check_checkpoint(trusted, "trusted checkpoint")
    return trusted


def cmd_inclusion(args: argparse.Namespace) -> str:
    proof = load_proof(args.file, INCLUSION_VERSION, INCLUSION_FIELDS)
    require_fields(proof["checkpoint"], CHECKPOINT_FIELDS, "checkpoint")
    trusted = load_trusted(args.checkpoint)
    cp = proof["checkpoint"]
    check_checkpoint(cp, "checkpoint")
    if trusted is not None:
        check_same_checkpoint(cp, trusted, "checkpoint")
    path = path_nodes(proof["path"], "path")
    entry_hash = check_entry(proof)
    seq, leaf_index, size = proof["seq"], proof["leaf_index"], cp["log_size"]
    if leaf_index != seq - 1:
        raise Failed(f"leaf_index: {leaf_index}, but the entry of seq {seq} is leaf {seq - 1}")
    if leaf_index >= size:
        raise Failed(f"leaf_index: {leaf_index} is not below checkpoint.log_size {size}: "
                     f"seq {seq} is after the checkpoint's last_seq {cp['last_seq']}")
    if seq == cp["last_seq"] and entry_hash.hex() != cp["head"]:
        raise Failed(f"checkpoint.head: {cp['head']}, but the entry of seq {seq} (the last) is {entry_hash.hex()}")
    root = root_from_inclusion_path(leaf_index, size, leaf_hash(entry_hash), path)
    if root.hex() != cp["log_root"]:
        raise Failed(f"path: leads from the entry's leaf to the root {root.hex()}, "
                     f"not to checkpoint.log_root {cp['log_root']}")
    note_unchecked(proof, INCLUSION_FIELDS, args.file)
    trust = ("the trusted checkpoint" if trusted is not None
             else "the proof's own checkpoint (not compared with a trusted one)")
    return (f"event {proof['event_id']} (seq {seq}, hash {entry_hash.hex()}) is leaf {leaf_index} of the log of "
            f"{size} entries with root {cp['log_root']}, checkpoint {cp['day']}: {trust}")


def cmd_consistency(args: argparse.Namespace) -> str:
    proof = load_proof(args.file, CONSISTENCY_VERSION, CONSISTENCY_FIELDS)
    require_fields(proof["from"], CHECKPOINT_FIELDS, "from")
    require_fields(proof["to"], CHECKPOINT_FIELDS, "to")
    trusted = load_trusted(args.trusted_from)
    old, new = proof["from"], proof["to"]
    check_checkpoint(old, "from")
    check_checkpoint(new, "to")
    if trusted is not None:
        check_same_checkpoint(old, trusted, "from")
    path = path_nodes(proof["path"], "path")
    m, n = old["log_size"], new["log_size"]
    if old["day"] > new["day"]:
        raise Failed(f"to.day: {new['day']} is before from.day {old['day']}")
    if m > n:
        raise Failed(f"to.log_size: {n} is smaller than from.log_size {m}: the log lost entries")
    if m == n:
        # Same size: the same tree. RFC 9162 §2.1.4.1: the proof is empty.
        if path:
            raise Failed(f"path: {len(path)} node(s), but the sizes are equal and the proof must be empty")
        for name in ("log_root", "head"):
            if old[name] != new[name]:
                raise Failed(f"to.{name}: {new[name]}, but from.{name} is {old[name]} at the same size {m}")
    else:
        fr, sr = roots_from_consistency_path(m, n, bytes.fromhex(old["log_root"]), path)
        # Either mismatch means the log of `to` does not start with the log of `from` (an entry
        # of the earlier log changed, removed or reordered), or the path is damaged.
        if fr.hex() != old["log_root"]:
            raise Failed(f"from.log_root: the path gives the old root {fr.hex()}, not {old['log_root']}: "
                         "the later log does not extend this checkpoint")
        if sr.hex() != new["log_root"]:
            raise Failed(f"to.log_root: the path gives the new root {sr.hex()}, not {new['log_root']}: "
                         "the later log does not extend the earlier checkpoint")
    note_unchecked(proof, CONSISTENCY_FIELDS, args.file)
    trust = "the trusted checkpoint" if trusted is not None else "the proof's own (not compared with a trusted one)"
    return (f"the log of checkpoint {new['day']} ({n} entries, root {new['log_root']}) extends the log of "
            f"checkpoint {old['day']} ({m} entries, root {old['log_root']}); from: {trust}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ledger_verify.py",
        description="Check the ledger-service books' checkpoints and event-log proofs (RFC 9162), trusting nothing.",
        epilog="Exit 0: OK; 1: a check failed (FAIL: names it); 2: the input cannot be read.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser("checkpoint", help="check a checkpoint's well-formedness")
    p.add_argument("file", metavar="CHECKPOINT.json")
    p.set_defaults(run=cmd_checkpoint)
    p = commands.add_parser("inclusion", help="check that an event is in the log of a checkpoint")
    p.add_argument("file", metavar="PROOF.json")
    p.add_argument("--checkpoint", metavar="CHECKPOINT.json",
                   help="a checkpoint you trust: the proof's checkpoint must equal it")
    p.set_defaults(run=cmd_inclusion)
    p = commands.add_parser("consistency", help="check that a later checkpoint's log extends an earlier one's")
    p.add_argument("file", metavar="PROOF.json")
    p.add_argument("--trusted-from", metavar="CHECKPOINT.json",
                   help="the earlier checkpoint you trust: the proof's `from` must equal it")
    p.set_defaults(run=cmd_consistency)
    args = parser.parse_args(argv)  # a usage error exits 2 with argparse's message
    try:
        print("OK: " + args.run(args))
        return 0
    except Failed as failure:
        print(f"FAIL: {failure}")
        return 1
    except Unreadable as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug of this program: still no traceback, never an OK
        print(f"ERROR: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
