"""RFC 6962 / RFC 9162 Merkle trees: hashes, roots, inclusion and consistency proofs (pure, stdlib only).

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH({})         = SHA-256("")
    MTH({d0})       = leaf_hash(d0)
    MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k: the largest power of two < n

Proofs are built from a `Nodes` source: `nodes(level, index)` answers the hash of the PERFECT
subtree at `level` covering leaves [index·2^level, (index+1)·2^level) (level 0: the leaf hashes).
Every subtree hash a proof needs is assembled from O(log n) such nodes, so a store that keeps
the perfect subtrees (`views.event_log`) answers any proof in O(log n) reads. `MemoryTree` is
such a source over a list of leaf hashes (tests, small trees).

The verifiers are RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), word for word.
All hashes are raw 32-byte digests here; callers convert to and from hex.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# nodes(level, index) -> the hash of that perfect subtree
Nodes = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


_HEX64 = re.compile(r"[0-9a-f]{64}")


def hex_leaf(digest: str) -> bytes | None:
    """leaf_hash of the 32 bytes a text of 64 lowercase hex digits names (an entry's `hash`); None
    for any other text."""
    if not _HEX64.fullmatch(digest):
        return None
    return leaf_hash(bytes.fromhex(digest))


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(data: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf data (each leaf hashed with `leaf_hash`)."""
    return root_of_leaf_hashes([leaf_hash(d) for d in data])


def root_of_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (iterative: the perfect subtrees, folded right to left)."""
    if not leaves:
        return EMPTY_ROOT
    frontier: list[tuple[int, bytes]] = []
    for leaf in leaves:
        frontier = push(frontier, leaf)[0]
    return frontier_root(frontier)


# -- the frontier: the perfect subtrees on the right edge of a tree (what an append needs) --------


def push(frontier: list[tuple[int, bytes]], leaf: bytes) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """Append one leaf hash to a frontier [(level, hash)] (levels strictly decreasing).

    Returns the new frontier and the subtrees completed by this leaf, [(level, hash)] from
    level 0 up (the leaf itself first): each is a node a store appends."""
    made = [(0, leaf)]
    level, current = 0, leaf
    stack = list(frontier)
    while stack and stack[-1][0] == level:
        _lvl, left = stack.pop()
        current = node_hash(left, current)
        level += 1
        made.append((level, current))
    stack.append((level, current))
    return stack, made


def frontier_keys(size: int) -> list[tuple[int, int]]:
    """The (level, index) of the perfect subtrees a tree of `size` leaves splits into, left to right."""
    keys = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def frontier_root(frontier: Sequence[tuple[int, bytes]]) -> bytes:
    """The root of a tree from its frontier's hashes (left to right), folded right to left."""
    if not frontier:
        return EMPTY_ROOT
    result = frontier[-1][1]
    for _level, digest in reversed(frontier[:-1]):
        result = node_hash(digest, result)
    return result


# -- subtree hashes from stored perfect subtrees ---------------------------------------------------


def subtree_hash(nodes: Nodes, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from the perfect subtrees `nodes` answers.

    Follows MTH's own recursion; an aligned power-of-two range is one read. The ranges the
    proofs ask for (those of RFC 9162's recursions) start at a multiple of the largest power
    of two below their width, so each costs at most one read per set bit of its width."""
    width = end - start
    if width <= 0:
        return EMPTY_ROOT
    if width & (width - 1) == 0 and start % width == 0:
        return nodes(width.bit_length() - 1, start // width)
    k = _split(width)
    return node_hash(subtree_hash(nodes, start, start + k), subtree_hash(nodes, start + k, end))


def inclusion_path(nodes: Nodes, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[size]), bottom to top."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_hash(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(nodes, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(nodes: Nodes, first: int, second: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[second]) (empty when the sizes are equal)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} leaves to {second}")
    path: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:  # SUBPROOF(m, D[start:end], whole)
        k = _split(end - start)
        if m <= k:
            path.append(subtree_hash(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(nodes, start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        path.append(subtree_hash(nodes, start, end))
    path.reverse()
    return path


# -- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) --------------------------------------------------


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root_hash: bytes) -> bool:
    """Whether `path` proves the leaf hash `leaf` at `index` in the tree of `size` leaves with `root_hash`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       path: Sequence[bytes]) -> bool:
    """Whether `path` proves the tree of `first` leaves (`first_hash`) a prefix of the tree of
    `second` leaves (`second_hash`)."""
    if first == second:
        return not path and first_hash == second_hash
    if not 0 < first < second or not path:
        return False
    proof = list(path)
    if first & (first - 1) == 0:  # an exact power of two
        proof.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# -- a tree in memory -------------------------------------------------------------------------------


class MemoryTree:
    """Every perfect subtree of a list of leaf hashes, in memory: a `Nodes` source."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self.frontier: list[tuple[int, bytes]] = []
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.frontier, made = push(self.frontier, leaf)
        for level, digest in made:
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(digest)

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return subtree_hash(self.node, 0, size) if size else EMPTY_ROOT
