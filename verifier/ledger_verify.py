#!/usr/bin/env python3
"""ledger_verify — check the ledger-service books' event-log proofs, trusting nothing.

This one file is the whole verifier. It uses the Python standard library only (3.9 or
later) — and, for Ed25519 signatures, the `cryptography` package when it is installed, else
the RFC 8032 reference verification written out below — and imports nothing of the ledger
service or Beancount, so what it accepts follows from the text below, the README's canonical
form, RFC 9162 and RFC 8032 alone. Usage:

    python ledger_verify.py checkpoint  CHECKPOINT.json [--key HEX]
    python ledger_verify.py inclusion   PROOF.json [--checkpoint TRUSTED_CHECKPOINT.json] [--key HEX]
    python ledger_verify.py consistency PROOF.json [--trusted-from TRUSTED_CHECKPOINT.json] [--key HEX]
    python ledger_verify.py liabilities LIABILITIES.json
    python ledger_verify.py holder      PROOF.json [--liabilities KEPT_LIABILITIES.json] [--key HEX]
    python ledger_verify.py keys        KEYS.json --genesis-key HEX

Exit codes: 0 and `OK: ...` when every check passes; 1 and `FAIL: <field or check>: <why>`
when a check fails; 2 and `ERROR: ...` (on stderr) when the input cannot be read: a file
that is missing or is not JSON, a JSON document that is not an object, a field missing or
of the wrong JSON type (a string where a number is due, ...), a key written twice.

What a proof proves, and what it does not: an inclusion proof shows that an entry (its
canonical text) is leaf `seq - 1` of the log whose root a checkpoint names; a consistency
proof shows that the log of a later checkpoint starts with the whole log of an earlier one
(no entry of the earlier log was changed, removed or reordered). Both are only as good as
the checkpoint you compare them with: pass one you obtained independently (published
earlier, received from the regulator, ...) with --checkpoint / --trusted-from, or pass the
books' public key (--key) that you obtained independently: a checkpoint signed by it is one
the operator stands behind, wherever you read it. Without either, a proof shows only that
it is internally consistent. Days closed before the books signed have unsigned
`ledger-checkpoint-v1` checkpoints.

A holder proof shows that a holder's balances (SP, active and locked SV) are one leaf of the
liabilities tree (a Merkle-sum tree: every node carries the sums below it) whose root and
sums a liabilities checkpoint names, and that no node on the way is negative; `liabilities`
checks that checkpoint's totals against its sums and the books' control accounts. The same
caveat holds: compare it with a liabilities checkpoint you kept (--liabilities).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from datetime import date
from decimal import ROUND_FLOOR, Decimal, Inexact, Rounded, localcontext
from typing import Any

Doc = dict[str, Any]  # a JSON object as read

CHECKPOINT_VERSION = "ledger-checkpoint-v1"  # unsigned: days closed before the books signed
SIGNED_VERSION = "ledger-checkpoint-v2"      # signed: every day closed since
ROTATION_VERSION = "ledger-key-rotation-v1"
KEYS_VERSION = "ledger-signing-keys-v1"
INCLUSION_VERSION = "ledger-inclusion-v1"
CONSISTENCY_VERSION = "ledger-consistency-v1"
CANONICAL_VERSION = "ledger-entry-v1"  # the first line of every entry's canonical text
ZEROS = "0" * 64  # the `prev` of seq 1, the genesis entry
HEX64 = re.compile(r"[0-9a-f]{64}")  # a SHA-256 digest as the books write it: lowercase hex
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

# The fields of each document and their JSON types (the formats: verifier/README.md).
CHECKPOINT_FIELDS: dict[str, type] = {
    "version": str, "day": str, "last_seq": int, "head": str, "log_size": int, "log_root": str}
SIGNED_FIELDS: dict[str, type] = {**CHECKPOINT_FIELDS, "liabilities": dict, "supply": dict, "key": str,
                                  "signature": str}
SIGNED_LIABILITIES_FIELDS: dict[str, type] = {"root": str, "holders": int, "sums": dict, "indices": dict}
SUPPLY_FIGURES = ("cap", "issued", "released", "sold", "burned", "redeemed", "circulating", "pool_cny",
                  "value_cny_per_sp", "closing_value_cny_per_sp")
HEX128 = re.compile(r"[0-9a-f]{128}")
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

def check_checkpoint(cp: Doc, where: str, key: str | None = None) -> bool:
    """A checkpoint's well-formedness (version, fields, hex digests, log_size == last_seq) and, for a
    signed one (v2), its signature under the key it names, which must be `key` when one is given.
    True when signed. An unsigned (v1) checkpoint fails when a key is given."""
    require_fields(cp, {"version": str}, where)
    if cp["version"] not in (CHECKPOINT_VERSION, SIGNED_VERSION):
        raise Failed(f"{where}.version: {cp['version']!r}, expected {SIGNED_VERSION!r} (signed) or "
                     f"{CHECKPOINT_VERSION!r} (a day closed before the books signed)")
    signed = cp["version"] == SIGNED_VERSION
    fields = SIGNED_FIELDS if signed else CHECKPOINT_FIELDS
    require_fields(cp, fields, where)
    extra = sorted(set(cp) - set(fields))
    if extra:
        raise Failed(f"{where}: unexpected field(s) {', '.join(extra)} (a {cp['version']} has exactly "
                     f"{', '.join(fields)})")
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
    if not signed:
        if key is not None:
            raise Failed(f"{where}: unsigned ({CHECKPOINT_VERSION}), but a key was given: only a signed checkpoint "
                         "can be checked against it")
        return False
    check_signed_fields(cp, where)
    check_signature(cp, where, key)
    return True


def check_signed_fields(cp: Doc, where: str) -> None:
    """The fields a signed checkpoint adds: the liabilities root, holders, sums and indices; the supply."""
    lb = cp["liabilities"]
    require_fields(lb, SIGNED_LIABILITIES_FIELDS, f"{where}.liabilities")
    if set(lb) != set(SIGNED_LIABILITIES_FIELDS):
        raise Failed(f"{where}.liabilities: has the fields {sorted(lb)}, expected exactly "
                     f"{', '.join(SIGNED_LIABILITIES_FIELDS)}")
    digest(lb["root"], f"{where}.liabilities.root")
    if lb["holders"] < 0:
        raise Failed(f"{where}.liabilities.holders: {lb['holders']} < 0")
    figures(lb["sums"], FIGURES, f"{where}.liabilities.sums")
    indices = lb["indices"]
    if set(indices) != {"epoch", "sp_index", "sv_index"}:
        raise Unreadable(f"{where}.liabilities.indices: has the fields {sorted(indices)}, "
                         "expected exactly epoch, sp_index, sv_index")
    require_fields(indices, {"epoch": int}, f"{where}.liabilities.indices")
    figure(indices["sp_index"], f"{where}.liabilities.indices.sp_index")
    figure(indices["sv_index"], f"{where}.liabilities.indices.sv_index")
    figures(cp["supply"], SUPPLY_FIGURES, f"{where}.supply")
    if set(cp["supply"]) != set(SUPPLY_FIGURES):
        raise Failed(f"{where}.supply: has the fields {sorted(cp['supply'])}, expected exactly "
                     f"{', '.join(SUPPLY_FIGURES)}")


def check_same_checkpoint(given: Doc, trusted: Doc, where: str) -> None:
    """The proof's checkpoint must be, field for field, the one the user trusts."""
    differ = [name for name in sorted(set(given) | set(trusted)) if given.get(name) != trusted.get(name)]
    if differ:
        shown = "; ".join(f"{name}: proof has {given.get(name)!r}, trusted has {trusted.get(name)!r}"
                          for name in differ)
        raise Failed(f"{where} differs from the trusted checkpoint: {shown}")


# ---------------------------------------------------------------------------------------
# Signatures: Ed25519 (RFC 8032) over canonical JSON
#
#   signed bytes = json.dumps(the object without "signature", sort_keys=True,
#                             separators=(",", ":"), ensure_ascii=True), as ASCII
#   key          = 64 hex digits (the raw 32-byte public key); signature = 128 hex digits
#
# The check uses the `cryptography` package when it is installed (the one dependency outside
# the standard library), else the reference verification of RFC 8032 §6 below, in plain Python.
# ---------------------------------------------------------------------------------------

def signed_bytes(document: Doc) -> bytes:
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def check_signature(document: Doc, where: str, key: str | None = None, signer: str = "key") -> None:
    """`document["signature"]` must be the signature of its canonical bytes by `document[signer]`
    (a rotation is signed by its `previous_key`), which must equal `key` when one is given."""
    public = document[signer]
    if not isinstance(public, str) or not HEX64.fullmatch(public):
        raise Failed(f"{where}.{signer}: not 64 lowercase hex digits (an Ed25519 public key): {public!r}")
    signature = document["signature"]
    if not isinstance(signature, str) or not HEX128.fullmatch(signature):
        raise Failed(f"{where}.signature: not 128 lowercase hex digits (an Ed25519 signature)")
    if key is not None and public != key:
        raise Failed(f"{where}.{signer}: {public}, not the key you trust ({key})")
    if not ed25519_verify(bytes.fromhex(public), signed_bytes(document), bytes.fromhex(signature)):
        raise Failed(f"{where}.signature: not a signature of this {document.get('version')} by {signer} {public}")


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return rfc8032_verify(public, message, signature)
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# RFC 8032 §6 (the reference code, verification only; not constant-time, which a verifier needs not be)
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_Q = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a: tuple, b: tuple) -> tuple:
    x1 = (a[1] - a[0]) * (b[1] - b[0]) % _P
    x2 = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c, d = 2 * a[3] * b[3] * _D % _P, 2 * a[2] * b[2] % _P
    e, f, g, h = x2 - x1, d - c, d + c, x2 + x1
    return (e * f, g * h, f * g, e * h)


def _mul(s: int, point: tuple) -> tuple:
    out = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            out = _add(out, point)
        point = _add(point, point)
        s >>= 1
    return out


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    return _P - x if (x & 1) != sign else x


def _decompress(data: bytes) -> tuple | None:
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0) or 0
_G = (_GX, _GY, 1, _GX * _GY % _P)


def rfc8032_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _decompress(public), _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _Q
    left, right = _mul(s, _G), _add(r, _mul(h, a))
    return (left[0] * right[2] - right[0] * left[2]) % _P == 0 and (left[1] * right[2] - right[1] * left[2]) % _P == 0


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
# The liabilities tree: issue 12 §3 (checkpoint), §5 (holder proof), §6 (this check)
#
# Every figure is plain decimal text (no exponent), e.g. "-12.5000". It is hashed exactly as
# written and compared as a Decimal; all arithmetic is exact (a context of 400 digits, never
# rounded). A node's sums are written as format(sum, "f"), the books' canonical text.
#
#   id_commit = SHA-256(bytes.fromhex(salt) || UTF-8 holder id), hex
#   leaf      = SHA-256("ledger-liability-leaf-v1\n" + id_commit + "\n" + base_sp + "\n" + shares + "\n" + sv_locked)
#   node(L,R) = SHA-256("ledger-liability-node-v1\n" + L.hash + "\n" + R.hash + "\n"
#                       + base_sp_sum + "\n" + shares_sum + "\n" + sv_locked_sum), the sums L + R exactly
#   empty     = SHA-256("ledger-liability-empty-v1"), sums 0
#
# The shape is RFC 6962's (k = the largest power of two < n, leaves in leaf order). A holder's
# SP at SP index S is base_sp + shares × S; their active SV at SV index D is shares × D.
#
# Why every node is checked, not only the root: in a plain Merkle-sum tree a subtree may hold
# a negative sum, hidden by a sibling inflated to match, so the root still equals the control
# accounts while some holders' balances were taken away. Each holder checking that every node
# on their path (each sibling, each computed node, their own leaf) is non-negative rules that
# out for every subtree some holder's path touches.
# ---------------------------------------------------------------------------------------

LIABILITIES_VERSION = "ledger-liabilities-v1"
HOLDER_VERSION = "ledger-holder-proof-v1"
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # plain decimal text, no exponent
UNIT = Decimal("0.0001")                      # balances are rounded down to this unit
FIGURES = ("base_sp", "shares", "sv_locked")  # a leaf's and a node's three figures
CONTROL = {"sp": "Liabilities:Holders:SP", "sv_active": "Liabilities:Holders:SV:Active",
           "sv_locked": "Liabilities:Holders:SV:Locked"}  # total -> its control account

LIABILITIES_FIELDS: dict[str, type] = {
    "version": str, "day": str, "holders": int, "root": str, "sums": dict, "indices": dict,
    "totals": dict, "control": dict, "head": str, "log_root": str}
HOLDER_FIELDS: dict[str, type] = {
    "version": str, "holder": str, "salt": str, "leaf_index": int, "leaf": dict, "balances": dict,
    "path": list, "liabilities": dict}


def figure(value: Any, field: str) -> Decimal:
    """A figure: a JSON string of plain decimal text (else exit 2)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise Unreadable(f"{field}: not a string of decimal text: {value!r}")
    if not DECIMAL.fullmatch(value):
        raise Unreadable(f"{field}: not plain decimal text (digits, an optional '-' and '.'): {value!r}")
    return Decimal(value)


def figures(obj: Any, names: tuple[str, ...], where: str) -> dict[str, Decimal]:
    """An object of exactly these figures, as Decimals (else exit 2)."""
    if not isinstance(obj, dict):
        raise Unreadable(f"{where}: not an object")
    if set(obj) != set(names):
        raise Unreadable(f"{where}: has the fields {sorted(obj)}, expected exactly {list(names)}")
    return {name: figure(obj[name], f"{where}.{name}") for name in names}


def text(number: Decimal) -> str:
    """The canonical text of a computed figure (the books' amounts.fmt)."""
    return format(number, "f")


def sha256_text(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def liability_leaf(id_commit: str, base_sp: str, shares: str, sv_locked: str) -> str:
    return sha256_text(f"ledger-liability-leaf-v1\n{id_commit}\n{base_sp}\n{shares}\n{sv_locked}")


def liability_node(left: str, right: str, base_sp: str, shares: str, sv_locked: str) -> str:
    return sha256_text(f"ledger-liability-node-v1\n{left}\n{right}\n{base_sp}\n{shares}\n{sv_locked}")


EMPTY_LIABILITIES = sha256_text("ledger-liability-empty-v1")


def sibling_sides(index: int, size: int) -> list[str]:
    """Where each sibling of leaf `index` stands in an RFC 6962 tree of `size` leaves, bottom to top.

    RFC 6962 §2.1.1 PATH: below the split k, the sibling is the right subtree; above it, the left.
    """
    sides: list[str] = []
    while size > 1:
        k = 1
        while k * 2 < size:
            k *= 2
        if index < k:
            sides.append("right")
            size = k
        else:
            sides.append("left")
            index, size = index - k, size - k
    return sides[::-1]  # found top to bottom


def ceil_log2(n: int) -> int:
    return (n - 1).bit_length() if n > 1 else 0


def check_node_signs(node: dict[str, Decimal], sp_index: Decimal, what: str) -> None:
    """A node (or leaf) holds no negative liability at the checkpoint's indices."""
    if node["shares"] < 0:
        raise Failed(f"{what}: shares {text(node['shares'])} < 0")
    if node["sv_locked"] < 0:
        raise Failed(f"{what}: sv_locked {text(node['sv_locked'])} < 0")
    sp = node["base_sp"] + node["shares"] * sp_index
    if sp < 0:
        raise Failed(f"{what}: base_sp + shares × sp_index = {text(sp)} < 0 (negative SP)")


def read_liabilities(lb: Any, where: str) -> dict[str, Any]:
    """A liabilities checkpoint's well-formedness (exit 2 on a wrong shape); its figures as Decimals."""
    if not isinstance(lb, dict):
        raise Unreadable(f"{where}: not an object")
    require_fields(lb, {"version": str}, where)
    if lb["version"] != LIABILITIES_VERSION:
        raise Failed(f"{where}.version: {lb['version']!r}, expected {LIABILITIES_VERSION!r}")
    require_fields(lb, LIABILITIES_FIELDS, where)
    extra = sorted(set(lb) - set(LIABILITIES_FIELDS))
    if extra:
        raise Failed(f"{where}: unexpected field(s) {', '.join(extra)} (a {LIABILITIES_VERSION} has exactly "
                     f"{', '.join(LIABILITIES_FIELDS)})")
    try:
        if not DAY.fullmatch(lb["day"]):
            raise ValueError
        date.fromisoformat(lb["day"])
    except ValueError:
        raise Failed(f"{where}.day: not a date YYYY-MM-DD: {lb['day']!r}") from None
    if lb["holders"] < 0:
        raise Failed(f"{where}.holders: {lb['holders']} < 0")
    digest(lb["root"], f"{where}.root")
    digest(lb["head"], f"{where}.head")
    digest(lb["log_root"], f"{where}.log_root")
    indices = lb["indices"]
    if set(indices) != {"epoch", "sp_index", "sv_index"}:
        raise Unreadable(f"{where}.indices: has the fields {sorted(indices)}, "
                         "expected exactly epoch, sp_index, sv_index")
    require_fields(indices, {"epoch": int}, f"{where}.indices")
    if indices["epoch"] < 0:
        raise Failed(f"{where}.indices.epoch: {indices['epoch']} < 0")
    return {
        "sums": figures(lb["sums"], FIGURES, f"{where}.sums"),
        "sp_index": figure(indices["sp_index"], f"{where}.indices.sp_index"),
        "sv_index": figure(indices["sv_index"], f"{where}.indices.sv_index"),
        "totals": figures(lb["totals"], ("sp", "sv_active", "sv_locked"), f"{where}.totals"),
        "control": figures(lb["control"], tuple(CONTROL.values()), f"{where}.control"),
    }


def check_liabilities(lb: Doc, where: str, control: bool = True) -> dict[str, Any]:
    """A liabilities checkpoint: well-formed; totals = the formulas; control − totals the rounding residue.

    The holder command passes control=False: the format's holder check has no control rule (the
    residue is the `liabilities` command's, on the checkpoint as a whole)."""
    got = read_liabilities(lb, where)
    sums, sp_index, sv_index = got["sums"], got["sp_index"], got["sv_index"]
    holders = lb["holders"]
    if holders == 0:  # the empty tree: its own hash, sums 0
        if lb["root"] != EMPTY_LIABILITIES:
            raise Failed(f"{where}.root: {lb['root']}, but the tree of 0 holders is {EMPTY_LIABILITIES}")
        if any(sums[name] != 0 for name in FIGURES):
            raise Failed(f"{where}.sums: not all 0 in the tree of 0 holders")
    # The root is a node like any other: no negative liability at the indices.
    check_node_signs(sums, sp_index, f"{where}.sums (the root)")
    # totals: sp = base_sp_sum + shares_sum × sp_index; sv_active = shares_sum × sv_index; sv_locked = sv_locked_sum
    formulas = {"sp": sums["base_sp"] + sums["shares"] * sp_index,
                "sv_active": sums["shares"] * sv_index,
                "sv_locked": sums["sv_locked"]}
    for name, expected in formulas.items():
        if got["totals"][name] != expected:
            raise Failed(f"{where}.totals.{name}: {text(got['totals'][name])}, but the sums at the indices give "
                         f"{text(expected)}")
    # control − totals per commodity: −(holders + 1) × 10⁻¹⁸ < residue < holders × 0.0001 + 0.0001.
    # Each holder's balance is rounded down to 0.0001 and the control accounts hold the rounded
    # postings (the upper bound); the books' indices carry 34 significant digits, so the exact
    # totals may stand a hair (far below 10⁻¹⁸ per holder) above the control accounts (the lower bound).
    bound = holders * UNIT + UNIT
    floor_residue = -(holders + 1) * Decimal("1e-18")
    for name, account in CONTROL.items() if control else ():
        residue = got["control"][account] - got["totals"][name]
        if residue <= floor_residue:
            raise Failed(f"{where}.control.{account}: {text(got['control'][account])} is below "
                         f"totals.{name} {text(got['totals'][name])}: the books hold less than they owe")
        if residue >= bound:
            raise Failed(f"{where}.control.{account}: exceeds totals.{name} by {text(residue)}, not less than "
                         f"holders × 0.0001 + 0.0001 = {text(bound)}")
    return got


Sibling = tuple[str, str, dict[str, Decimal]]  # (side, hash, figures) of one node of the path


def read_path(path: list[Any]) -> list[Sibling]:
    """The path's siblings, well-formed (else exit 2): side, hash and exactly the three figures."""
    siblings: list[Sibling] = []
    for i, node in enumerate(path):
        where = f"path[{i}]"
        if not isinstance(node, dict):
            raise Unreadable(f"{where}: not an object")
        require_fields(node, {"side": str, "hash": str}, where)
        if set(node) != {"side", "hash", *FIGURES}:
            raise Unreadable(f"{where}: has the fields {sorted(node)}, expected exactly side, hash, "
                             f"{', '.join(FIGURES)}")
        sums = {name: figure(node[name], f"{where}.{name}") for name in FIGURES}
        if node["side"] not in ("left", "right"):
            raise Failed(f"{where}.side: {node['side']!r}, expected 'left' or 'right'")
        digest(node["hash"], f"{where}.hash")
        siblings.append((node["side"], node["hash"], sums))
    return siblings


def check_path_shape(siblings: list[Sibling], index: int, holders: int) -> None:
    """leaf_index < holders; the path no longer than ⌈log2 holders⌉, and exactly RFC 6962's for this leaf."""
    if not 0 <= index < holders:
        raise Failed(f"leaf_index: {index} is not below liabilities.holders {holders}")
    if len(siblings) > ceil_log2(holders):
        raise Failed(f"path: {len(siblings)} siblings, more than ⌈log2 {holders}⌉ = {ceil_log2(holders)}")
    sides = sibling_sides(index, holders)
    if len(siblings) != len(sides):
        raise Failed(f"path: {len(siblings)} siblings, but leaf {index} of {holders} has {len(sides)}")
    for i, (side, _, _) in enumerate(siblings):
        if side != sides[i]:
            raise Failed(f"path[{i}].side: {side!r}, but in a tree of {holders} the sibling of leaf {index} "
                         f"at this level stands on the {sides[i]}")


def fold(leaf_hash_: str, leaf: dict[str, Decimal], siblings: list[Sibling],
         sp_index: Decimal) -> tuple[str, dict[str, Decimal]]:
    """(hash, sums) of the root the path leads to, checking every node on the way for a negative figure."""
    current_hash, current = leaf_hash_, leaf
    check_node_signs(current, sp_index, "leaf")
    for i, (side, sibling_hash, sibling) in enumerate(siblings):  # bottom to top
        check_node_signs(sibling, sp_index, f"path[{i}] (sibling)")
        current = {name: current[name] + sibling[name] for name in FIGURES}
        sums_text = [text(current[name]) for name in FIGURES]
        if side == "left":  # the sibling stands on the left: node(sibling, current)
            current_hash = liability_node(sibling_hash, current_hash, *sums_text)
        else:
            current_hash = liability_node(current_hash, sibling_hash, *sums_text)
        check_node_signs(current, sp_index, f"node above path[{i}]")
    return current_hash, current


def check_balances(balances: dict[str, Decimal], leaf: dict[str, Decimal], sp_index: Decimal,
                   sv_index: Decimal) -> None:
    """The balances: the leaf's figures at the indices, rounded down to 0.0001."""
    expected = {"sp": leaf["base_sp"] + leaf["shares"] * sp_index,
                "sv_active": leaf["shares"] * sv_index,
                "sv_locked": leaf["sv_locked"]}
    for name, exact_value in expected.items():
        with localcontext() as rounding:  # the one place a figure is rounded: down, on purpose
            rounding.traps[Inexact] = rounding.traps[Rounded] = False
            floor = exact_value.quantize(UNIT, rounding=ROUND_FLOOR)
        if balances[name] != floor:
            raise Failed(f"balances.{name}: {text(balances[name])}, but the leaf at the indices gives "
                         f"{text(exact_value)}, rounded down {text(floor)}")


def check_holder_proof(proof: Doc) -> str:
    """Every check of a holder proof (format: verifier/README.md "Holder proof"); the root hash on success."""
    lb = proof["liabilities"]
    got = check_liabilities(lb, "liabilities", control=False)
    leaf = figures(proof["leaf"], FIGURES, "leaf")
    balances = figures(proof["balances"], ("sp", "sv_active", "sv_locked"), "balances")
    salt = digest(proof["salt"], "salt")
    siblings = read_path(proof["path"])
    check_path_shape(siblings, proof["leaf_index"], lb["holders"])
    # The leaf: id_commit from the salt and the holder id, then the leaf hash over the figures as written.
    id_commit = hashlib.sha256(salt + proof["holder"].encode("utf-8")).hexdigest()
    leaf_hash_ = liability_leaf(id_commit, *(proof["leaf"][name] for name in FIGURES))
    root, sums = fold(leaf_hash_, leaf, siblings, got["sp_index"])
    if root != lb["root"]:
        raise Failed(f"path: leads from the holder's leaf to the root {root}, not to liabilities.root "
                     f"{lb['root']} (a wrong salt, holder id, leaf figure, sibling or side)")
    for name in FIGURES:
        if sums[name] != got["sums"][name]:
            raise Failed(f"liabilities.sums.{name}: {text(got['sums'][name])}, but the path sums to "
                         f"{text(sums[name])}")
    check_balances(balances, leaf, got["sp_index"], got["sv_index"])
    return root


# ---------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------

def note_unchecked(document: Doc, known: dict[str, type], where: str) -> None:
    for name in sorted(set(document) - set(known)):
        print(f"note: {where}: field {name!r} is not part of the proof and was not checked", file=sys.stderr)


def cmd_checkpoint(args: argparse.Namespace) -> str:
    cp = load_json(args.file)
    signed = check_checkpoint(cp, "checkpoint", args.key)
    return (f"checkpoint {cp['day']} is well-formed: log_size {cp['log_size']}, "
            f"log_root {cp['log_root']}, head {cp['head']} ({signature_note(cp, signed, args.key)})")


def signature_note(cp: Doc, signed: bool, key: str | None) -> str:
    if not signed:
        return f"unsigned: a {CHECKPOINT_VERSION}"
    if key is not None:
        return f"signed by the key you trust, {key}"
    return f"signed by the key it names, {cp['key']}, not compared with a key you trust (--key)"


def load_trusted(path: str | None, key: str | None = None) -> Doc | None:
    if path is None:
        return None
    trusted = load_json(path)
    check_checkpoint(trusted, "trusted checkpoint", key)
    return trusted


def cmd_inclusion(args: argparse.Namespace) -> str:
    proof = load_proof(args.file, INCLUSION_VERSION, INCLUSION_FIELDS)
    require_fields(proof["checkpoint"], CHECKPOINT_FIELDS, "checkpoint")
    trusted = load_trusted(args.checkpoint, args.key)
    cp = proof["checkpoint"]
    signed = check_checkpoint(cp, "checkpoint", args.key)
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
            f"{size} entries with root {cp['log_root']}, checkpoint {cp['day']}: {trust}; "
            f"{signature_note(cp, signed, args.key)}")


def cmd_consistency(args: argparse.Namespace) -> str:
    proof = load_proof(args.file, CONSISTENCY_VERSION, CONSISTENCY_FIELDS)
    require_fields(proof["from"], CHECKPOINT_FIELDS, "from")
    require_fields(proof["to"], CHECKPOINT_FIELDS, "to")
    trusted = load_trusted(args.trusted_from, args.key if args.key and args.trusted_from else None)
    old, new = proof["from"], proof["to"]
    check_checkpoint(old, "from", args.key if old.get("version") == SIGNED_VERSION else None)
    signed = check_checkpoint(new, "to", args.key)
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
            f"checkpoint {old['day']} ({m} entries, root {old['log_root']}); from: {trust}; to: "
            f"{signature_note(new, signed, args.key)}")


def cmd_liabilities(args: argparse.Namespace) -> str:
    lb = load_json(args.file)
    check_liabilities(lb, "liabilities")
    totals = lb["totals"]
    return (f"liabilities {lb['day']} are well-formed: {lb['holders']} holders, root {lb['root']}; totals "
            f"sp {totals['sp']}, sv_active {totals['sv_active']}, sv_locked {totals['sv_locked']} equal the "
            "formulas, and the control accounts exceed them by less than the rounding residue "
            "(the tree's other leaves are not checked here: each holder checks their own proof)")


def check_liabilities_signed(lb: Doc, cp: Doc) -> None:
    """The liabilities of a holder proof are the ones the signed checkpoint of the same day names."""
    signed = cp["liabilities"]
    if lb["day"] != cp["day"]:
        raise Failed(f"checkpoint.day: {cp['day']}, but the liabilities are of {lb['day']}")
    for name in ("root", "holders", "sums", "indices"):
        if lb[name] != signed[name]:
            raise Failed(f"checkpoint.liabilities.{name}: {signed[name]!r}, but the proof's liabilities have "
                         f"{lb[name]!r}")


def cmd_keys(args: argparse.Namespace) -> str:
    """The books' signing keys: the first is the genesis key (which you must know from elsewhere);
    each rotation is signed by the key it replaces. Prints the key in force."""
    keys = load_proof(args.file, KEYS_VERSION, {"genesis_key": str, "rotations": list})
    key = args.genesis_key
    if keys["genesis_key"] != key:
        raise Failed(f"genesis_key: {keys['genesis_key']}, not the genesis key you trust ({key})")
    for i, rotation in enumerate(keys["rotations"]):
        where = f"rotations[{i}]"
        if not isinstance(rotation, dict):
            raise Unreadable(f"{where} is not an object")
        require_fields(rotation, {"version": str, "day": str, "previous_key": str, "public_key": str,
                                  "signature": str}, where)
        if rotation["version"] != ROTATION_VERSION:
            raise Failed(f"{where}.version: {rotation['version']!r}, expected {ROTATION_VERSION!r}")
        if rotation["previous_key"] != key:
            raise Failed(f"{where}.previous_key: {rotation['previous_key']}, but the key in force is {key}")
        check_signature(rotation, where, key, signer="previous_key")
        digest(rotation["public_key"], f"{where}.public_key")
        key = rotation["public_key"]
    return f"{len(keys['rotations'])} rotation(s), each signed by the key it replaces; the key in force is {key}"


def cmd_holder(args: argparse.Namespace) -> str:
    proof = load_proof(args.file, HOLDER_VERSION, HOLDER_FIELDS)
    kept = None
    if args.liabilities is not None:
        kept = load_json(args.liabilities)
        check_liabilities(kept, "kept liabilities", control=False)
        # The proof's liabilities must be, field for field, the ones you kept.
        check_same_checkpoint(proof["liabilities"], kept, "liabilities")
    check_holder_proof(proof)
    signed_note = ""
    if "checkpoint" in proof:  # the signed checkpoint of the day: it must name these liabilities
        cp = proof["checkpoint"]
        if not isinstance(cp, dict):
            raise Unreadable(f"{args.file}: the field 'checkpoint' is not an object")
        signed = check_checkpoint(cp, "checkpoint", args.key)
        if signed:
            check_liabilities_signed(proof["liabilities"], cp)
        signed_note = "; " + signature_note(cp, signed, args.key)
    elif args.key is not None:
        raise Failed("checkpoint: the proof carries no signed checkpoint to check against the key")
    note_unchecked(proof, {**HOLDER_FIELDS, "checkpoint": dict}, args.file)
    lb, bal = proof["liabilities"], proof["balances"]
    trust = ("the kept liabilities checkpoint" if kept is not None
             else "the proof's own liabilities (not compared with a kept one)") + signed_note
    return (f"holder {proof['holder']!r} is leaf {proof['leaf_index']} of {lb['holders']} with balances sp "
            f"{bal['sp']}, sv_active {bal['sv_active']}, sv_locked {bal['sv_locked']} in the liabilities of "
            f"{lb['day']} (root {lb['root']}); no node on the path is negative: {trust}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ledger_verify.py",
        description="Check the ledger-service books' checkpoints, event-log proofs (RFC 9162) and holder "
                    "(liabilities) proofs, trusting nothing.",
        epilog="Exit 0: OK; 1: a check failed (FAIL: names it); 2: the input cannot be read.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    key_help = "the books' public signing key you trust (64 hex digits): a signed checkpoint must be signed by it"
    p = commands.add_parser("checkpoint", help="check a checkpoint's well-formedness and signature")
    p.add_argument("file", metavar="CHECKPOINT.json")
    p.add_argument("--key", metavar="HEX", help=key_help)
    p.set_defaults(run=cmd_checkpoint)
    p = commands.add_parser("inclusion", help="check that an event is in the log of a checkpoint")
    p.add_argument("file", metavar="PROOF.json")
    p.add_argument("--checkpoint", metavar="CHECKPOINT.json",
                   help="a checkpoint you trust: the proof's checkpoint must equal it")
    p.add_argument("--key", metavar="HEX", help=key_help)
    p.set_defaults(run=cmd_inclusion)
    p = commands.add_parser("consistency", help="check that a later checkpoint's log extends an earlier one's")
    p.add_argument("file", metavar="PROOF.json")
    p.add_argument("--trusted-from", metavar="CHECKPOINT.json",
                   help="the earlier checkpoint you trust: the proof's `from` must equal it")
    p.add_argument("--key", metavar="HEX", help=key_help)
    p.set_defaults(run=cmd_consistency)
    p = commands.add_parser("liabilities", help="check a liabilities checkpoint: totals and control accounts")
    p.add_argument("file", metavar="LIABILITIES.json")
    p.set_defaults(run=cmd_liabilities)
    p = commands.add_parser("holder", help="check that a holder's balances are in the liabilities tree")
    p.add_argument("file", metavar="PROOF.json")
    p.add_argument("--liabilities", metavar="LIABILITIES.json",
                   help="a liabilities checkpoint you kept: the proof's `liabilities` must equal it")
    p.add_argument("--key", metavar="HEX", help=key_help)
    p.set_defaults(run=cmd_holder)
    p = commands.add_parser("keys", help="check the books' key rotations from the genesis key; print the key in force")
    p.add_argument("file", metavar="KEYS.json")
    p.add_argument("--genesis-key", metavar="HEX", required=True,
                   help="the public key of the books' genesis entry, obtained from a source you trust")
    p.set_defaults(run=cmd_keys)
    args = parser.parse_args(argv)  # a usage error exits 2 with argparse's message
    try:
        with localcontext() as context:  # every figure's arithmetic is exact: a rounding is an error
            context.prec = 400
            context.traps[Inexact] = context.traps[Rounded] = True
            print("OK: " + args.run(args))
        return 0
    except Failed as failure:
        print(f"FAIL: {failure}")
        return 1
    except Unreadable as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    except (Inexact, Rounded):  # a figure of more digits than 400 can hold: not the books' figures
        print("ERROR: a figure too long to compute exactly with 400 digits", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001  a bug of this program: still no traceback, never an OK
        print(f"ERROR: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
