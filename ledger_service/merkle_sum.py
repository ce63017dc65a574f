"""The liabilities tree: a Merkle-sum tree over holders (issue 12 §3; formats: README "Liabilities").

Pure (the standard library and Decimal only): the leaf, node and empty hashes and sums, the
RFC 6962-shaped tree over the leaves by index, inclusion paths with their sides, and an
in-memory verifier of a holder proof (the same checks as the standalone verifier).

A leaf holds a holder's (base_sp, shares, sv_locked): their SP at SP index S is
base_sp + shares × S and their active SV at SV index D is shares × D, so a release (S, D
move) touches no leaf. Every node carries the exact sums of its children's three figures.
All arithmetic is exact (a Decimal context of 400 digits, never rounded in practice).

Storage is the caller's: `Nodes` reads the perfect subtrees (level, index) — level 0 the
leaves — and `update` recomputes the perfect ancestors of changed leaves, level by level.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation
from typing import Any, NamedTuple

CTX = Context(prec=400)
QUANTUM = Decimal("0.0001")
LEAF_PREFIX = "ledger-liability-leaf-v1\n"
NODE_PREFIX = "ledger-liability-node-v1\n"
EMPTY_HASH = hashlib.sha256(b"ledger-liability-empty-v1").hexdigest()
ZERO = Decimal(0)
FIGURES = ("base_sp", "shares", "sv_locked")


def text(number: Decimal) -> str:
    """Plain decimal text, never exponent form (`amounts.fmt`)."""
    return format(number, "f")


class Node(NamedTuple):
    """A node (or leaf) of the tree: its hash (hex) and its three sums. (A named tuple: a close at
    10⁶ holders builds ~130,000 of them, and a tuple is built ~3× faster than a frozen dataclass.)"""

    hash: str
    base_sp: Decimal
    shares: Decimal
    sv_locked: Decimal

    def sp(self, sp_index: Decimal) -> Decimal:
        return CTX.add(self.base_sp, CTX.multiply(self.shares, sp_index))

    def figures(self) -> dict[str, str]:
        return {"base_sp": text(self.base_sp), "shares": text(self.shares), "sv_locked": text(self.sv_locked)}


EMPTY = Node(EMPTY_HASH, ZERO, ZERO, ZERO)


def salt(secret: bytes, holder_id: str) -> str:
    """The holder's salt: HMAC-SHA256(secret, holder id), hex."""
    return hmac.new(secret, holder_id.encode("utf-8"), hashlib.sha256).hexdigest()


def id_commit(salt_hex: str, holder_id: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt_hex) + holder_id.encode("utf-8")).hexdigest()


def leaf(commit: str, base_sp: Decimal, shares: Decimal, sv_locked: Decimal) -> Node:
    body = LEAF_PREFIX + commit + "\n" + text(base_sp) + "\n" + text(shares) + "\n" + text(sv_locked)
    return Node(hashlib.sha256(body.encode("utf-8")).hexdigest(), base_sp, shares, sv_locked)


def node(left: Node, right: Node) -> Node:
    base_sp = CTX.add(left.base_sp, right.base_sp)
    shares = CTX.add(left.shares, right.shares)
    sv_locked = CTX.add(left.sv_locked, right.sv_locked)
    body = (NODE_PREFIX + left.hash + "\n" + right.hash + "\n" + text(base_sp) + "\n" + text(shares) + "\n"
            + text(sv_locked))
    return Node(hashlib.sha256(body.encode("utf-8")).hexdigest(), base_sp, shares, sv_locked)


def floor(number: Decimal) -> Decimal:
    return number.quantize(QUANTUM, rounding=ROUND_FLOOR, context=CTX)


def _split(n: int) -> int:
    """RFC 6962: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


Nodes = Callable[[int, int], Node]  # (level, index) -> the perfect subtree's node


def subtree(nodes: Nodes, start: int, size: int) -> Node:
    """The node over leaves [start, start + size) of the RFC 6962 shape (start aligned as the split gives)."""
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        return nodes(level, start >> level)
    k = _split(size)
    return node(nodes(k.bit_length() - 1, start >> (k.bit_length() - 1)), subtree(nodes, start + k, size - k))


def root(nodes: Nodes, size: int) -> Node:
    return EMPTY if size == 0 else subtree(nodes, 0, size)


def path(nodes: Nodes, size: int, index: int) -> list[tuple[str, Node]]:
    """The siblings of leaf `index` bottom to top, each with the side the SIBLING stands on."""
    assert 0 <= index < size
    out: list[tuple[str, Node]] = []
    start, n = 0, size
    while n > 1:
        k = _split(n)
        if index < start + k:
            out.append(("right", subtree(nodes, start + k, n - k)))
            n = k
        else:
            out.append(("left", subtree(nodes, start, k)))
            start, n = start + k, n - k
    out.reverse()
    return out


def update(nodes: Nodes, put: Callable[[int, int, Node], None], size: int, changed: Iterable[int]) -> int:
    """Recompute the perfect ancestors of the changed leaves (already `put` at level 0) in a tree of
    `size` leaves; the nodes written above the leaves."""
    dirty = set(changed)
    written = 0
    level = 0
    while dirty and (size >> (level + 1)):
        parents = {i >> 1 for i in dirty if ((i >> 1) + 1) << (level + 1) <= size}
        for p in sorted(parents):
            put(level + 1, p, node(nodes(level, 2 * p), nodes(level, 2 * p + 1)))
            written += 1
        dirty = parents
        level += 1
    return written


def memory_nodes(leaves: Sequence[Node]) -> dict[tuple[int, int], Node]:
    """Every perfect subtree over `leaves` (for tests and small trees)."""
    out: dict[tuple[int, int], Node] = {(0, i): lf for i, lf in enumerate(leaves)}
    update(lambda lv, i: out[(lv, i)], lambda lv, i, nd: out.__setitem__((lv, i), nd), len(leaves),
           range(len(leaves)))
    return out


# -- the holder proof's verifier (the checks of the standalone verifier) --------------------------------------


class ProofError(ValueError):
    """A holder proof that does not verify: `check` names the check."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


def _dec(value: Any, where: str) -> Decimal:
    if not isinstance(value, str):
        raise ProofError("malformed", f"{where} is not a decimal text")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ProofError("malformed", f"{where} is not a decimal") from exc
    if not number.is_finite():
        raise ProofError("malformed", f"{where} is not finite")
    return number


def _node_of(data: Mapping[str, Any], where: str, hash_key: str = "hash") -> Node:
    return Node(str(data.get(hash_key, "")), *(_dec(data.get(f), f"{where}.{f}") for f in FIGURES))


def _nonnegative(nd: Node, sp_index: Decimal, where: str) -> None:
    if nd.shares < 0 or nd.sv_locked < 0 or nd.sp(sp_index) < 0:
        raise ProofError("negative", f"{where}: a negative figure at the checkpoint's indices")


def verify_holder_proof(proof: Mapping[str, Any]) -> None:
    """Raise ProofError naming the first failed check; return None when the proof holds."""
    try:
        liab = proof["liabilities"]
        holder, salt_hex, index = proof["holder"], proof["salt"], proof["leaf_index"]
        holders = liab["holders"]
        sp_index = _dec(liab["indices"]["sp_index"], "indices.sp_index")
        sv_index = _dec(liab["indices"]["sv_index"], "indices.sv_index")
        sums = _node_of(dict(liab["sums"], hash=liab["root"]), "sums")
        current = leaf(id_commit(salt_hex, holder), *(_dec(proof["leaf"][f], f"leaf.{f}") for f in FIGURES))
        steps = [(step["side"], _node_of(step, "path")) for step in proof["path"]]
        totals, balances = liab["totals"], proof["balances"]
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProofError):
            raise
        raise ProofError("malformed", f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(index, int) or not isinstance(holders, int) or not 0 <= index < holders:
        raise ProofError("leaf_index", f"leaf_index {index!r} is not below holders {holders!r}")
    if len(steps) > (holders - 1).bit_length():
        raise ProofError("path.length", f"{len(steps)} siblings for {holders} holders")
    _nonnegative(current, sp_index, "leaf")
    for i, (side, sibling) in enumerate(steps):
        _nonnegative(sibling, sp_index, f"path[{i}]")
        if side == "left":
            current = node(sibling, current)
        elif side == "right":
            current = node(current, sibling)
        else:
            raise ProofError("malformed", f"path[{i}].side {side!r}")
        _nonnegative(current, sp_index, f"node {i + 1}")
    if current != sums:
        raise ProofError("root", "the path does not lead to the checkpoint's root and sums")
    _check_figures(current, proof, sp_index, sv_index, totals, balances)


def _check_figures(current: Node, proof: Mapping[str, Any], sp_index: Decimal, sv_index: Decimal,
                   totals: Mapping[str, Any], balances: Mapping[str, Any]) -> None:
    want_totals = {"sp": current.sp(sp_index), "sv_active": CTX.multiply(current.shares, sv_index),
                   "sv_locked": current.sv_locked}
    for name, value in want_totals.items():
        if _dec(totals.get(name), f"totals.{name}") != value:
            raise ProofError("totals", f"totals.{name} is not the root's sums at the indices")
    leaf_node = leaf("0" * 64, *(_dec(proof["leaf"][f], f"leaf.{f}") for f in FIGURES))
    want = {"sp": floor(leaf_node.sp(sp_index)), "sv_active": floor(CTX.multiply(leaf_node.shares, sv_index)),
            "sv_locked": floor(leaf_node.sv_locked)}
    for name, value in want.items():
        if _dec(balances.get(name), f"balances.{name}") != value:
            raise ProofError("balances", f"balances.{name} is not the leaf's figures at the indices")


# The index arithmetic's crumbs (34 digits) can put the exact totals a hair above the control
# accounts; a holder's balance is first rounded to this grain (`subledger.GRAIN`), then floored.
GRAIN = Decimal("1e-18")


def residue_ok(control: Decimal, total: Decimal, holders: int) -> bool:
    """The documented residue rule, per commodity:
    −(holders + 1) × 10⁻¹⁸ < control − total < holders × 0.0001 + 0.0001."""
    diff = CTX.subtract(control, total)
    n = Decimal(holders + 1)
    return -CTX.multiply(n, GRAIN) < diff < CTX.add(CTX.multiply(Decimal(holders), QUANTUM), QUANTUM)
