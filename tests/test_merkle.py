"""ledger_service.merkle against pymerkle (RFC 6962 mode) and a recursive MTH written from RFC 9162 §2.1."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from ledger_service import merkle

# -- the reference: RFC 9162 §2.1, as written ---------------------------------------------------------


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def data(n: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(n)]


def tree(n: int) -> merkle.MemoryTree:
    return merkle.MemoryTree([merkle.leaf_hash(x) for x in data(n)])


SIZES = range(1, 65)


def test_hashes_are_rfc6962():
    assert hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert merkle.node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()
    assert merkle.root([]) == merkle.EMPTY_ROOT
    # pymerkle's default hasher is RFC 6962's: SHA-256 with the 0x00 / 0x01 prefixes
    lib = InmemoryTree(algorithm="sha256")
    assert lib.security and lib.leaf_prefix == b"\x00" and lib.node_prefix == b"\x01"
    assert lib.hash_buff(b"a") == merkle.leaf_hash(b"a")


@pytest.mark.parametrize("n", SIZES)
def test_roots_and_inclusion_paths_match_pymerkle_and_the_rfc(n):
    d = data(n)
    lib = InmemoryTree(algorithm="sha256")
    for x in d:
        lib.append_entry(x)
    t = tree(n)
    for size in range(1, n + 1):
        assert t.root(size) == lib.get_root(size) == ref_mth(d[:size]) == merkle.root(d[:size])
    assert merkle.root_of_leaf_hashes([merkle.leaf_hash(x) for x in d]) == ref_mth(d)
    root = t.root()
    bound = math.ceil(math.log2(n)) if n > 1 else 0
    for m in range(n):
        path = merkle.inclusion_path(t.node, m, n)
        assert path == ref_path(m, d)
        assert path == lib.prove_inclusion(m + 1, n).path[1:]  # pymerkle's path starts with the leaf itself
        assert len(path) <= bound
        assert merkle.verify_inclusion(merkle.leaf_hash(d[m]), m, n, path, root)


@pytest.mark.parametrize("n", SIZES)
def test_consistency_paths_match_the_rfc_and_verify(n):
    d = data(n)
    t = tree(n)
    lib = InmemoryTree(algorithm="sha256")
    for x in d:
        lib.append_entry(x)
    bound = math.ceil(math.log2(n)) + 1 if n > 1 else 0
    for m in range(1, n + 1):
        path = merkle.consistency_path(t.node, m, n)
        assert path == ref_subproof(m, d, True)
        assert len(path) <= bound
        assert merkle.verify_consistency(m, n, t.root(m), t.root(), path)
        if m < n:  # pymerkle's own proof of the same pair holds with our roots
            lib.prove_consistency(m, n).verify(t.root(m), t.root())
            assert not merkle.verify_consistency(m, n, t.root(m), t.root(), [])


def test_bad_arguments():
    t = tree(4)
    with pytest.raises(ValueError):
        merkle.inclusion_path(t.node, 4, 4)
    with pytest.raises(ValueError):
        merkle.consistency_path(t.node, 0, 4)
    with pytest.raises(ValueError):
        merkle.consistency_path(t.node, 5, 4)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"x"), 4, 4, [], t.root())
    assert not merkle.verify_consistency(3, 2, t.root(3), t.root(2), [b"x" * 32])


def test_frontier_keys_cover_the_tree():
    for n in range(1, 200):
        keys = merkle.frontier_keys(n)
        assert sum(1 << level for level, _i in keys) == n
        start = 0
        for level, index in keys:
            assert index << level == start
            start += 1 << level


def _flip(digest: bytes, bit: int) -> bytes:
    b = bytearray(digest)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), pick=st.data())
def test_every_inclusion_proof_verifies_and_tampering_fails(n, pick):
    t = tree(n)
    m = pick.draw(st.integers(0, n - 1))
    leaf = t.node(0, m)
    path = merkle.inclusion_path(t.node, m, n)
    root = t.root()
    assert merkle.verify_inclusion(leaf, m, n, path, root)
    bit = pick.draw(st.integers(0, 255))
    assert not merkle.verify_inclusion(_flip(leaf, bit), m, n, path, root)
    assert not merkle.verify_inclusion(leaf, m, n, path, _flip(root, bit))
    if path:
        i = pick.draw(st.integers(0, len(path) - 1))
        bad = list(path)
        bad[i] = _flip(bad[i], bit)
        assert not merkle.verify_inclusion(leaf, m, n, bad, root)
        assert not merkle.verify_inclusion(leaf, m, n, path[:-1], root)
        assert not merkle.verify_inclusion(leaf, m, n, path + [root], root)
    other = pick.draw(st.integers(0, n))
    if other != m and n > 1:
        assert not merkle.verify_inclusion(leaf, other, n, path, root)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), pick=st.data())
def test_every_consistency_proof_verifies_and_tampering_fails(n, pick):
    t = tree(n)
    m = pick.draw(st.integers(1, n))
    path = merkle.consistency_path(t.node, m, n)
    old, new = t.root(m), t.root()
    assert merkle.verify_consistency(m, n, old, new, path)
    bit = pick.draw(st.integers(0, 255))
    assert not merkle.verify_consistency(m, n, _flip(old, bit), new, path)
    assert not merkle.verify_consistency(m, n, old, _flip(new, bit), path)
    if path:
        i = pick.draw(st.integers(0, len(path) - 1))
        bad = list(path)
        bad[i] = _flip(bad[i], bit)
        assert not merkle.verify_consistency(m, n, old, new, bad)
        assert not merkle.verify_consistency(m, n, old, new, path[:-1])
    if m < n and m > 1:  # another first size, same hashes
        assert not merkle.verify_consistency(m - 1, n, old, new, path) or t.root(m - 1) == old
