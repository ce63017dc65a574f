"""The books' signing key: Ed25519 (RFC 8032), kept outside the journal (issue 12 §4).

    BOOKS/keys/signing.key                   the private key in force: 32-byte seed, 64 hex digits (0600)
    BOOKS/keys/retired/<public>.key          each key a rotation retired, kept for the record (0600)

The public key (64 hex digits, the raw 32 bytes) is written into the genesis entry
(`signing_key`) and into every key rotation (`signing_key` entry, signed by the key it
replaces); each checkpoint names the key that signed it (`key`).

What is signed is always a JSON object's canonical bytes (`signed_bytes`): the object without
its `signature`, serialised with sorted keys, no spaces (`separators=(",", ":")`) and ASCII
escapes — `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)` —
encoded as ASCII. Every such object carries a `version` that says what it is
(`ledger-checkpoint-v2`, `ledger-key-rotation-v1`), so a signature over one can never be
read as a signature over the other. The signature is 128 hex digits (64 bytes).

The key is never printed, logged or written to the books' journal; only its public half is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .journal import make_private_dirs, write_private

KEY_FILE = Path("keys") / "signing.key"
NEXT_FILE = Path("keys") / "signing.next.key"  # a rotation's new key, on disk before the rotation is committed
RETIRED_DIR = Path("keys") / "retired"
PUBLIC_KEY_RE = re.compile(r"[0-9a-f]{64}")
SIGNATURE_RE = re.compile(r"[0-9a-f]{128}")


class SigningKeyError(RuntimeError):
    """The books' signing key cannot be read (missing, or not a key)."""


def key_path(books_root: Path | str) -> Path:
    return Path(books_root) / KEY_FILE


def signed_bytes(obj: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the object without `signature`, canonical JSON (see above)."""
    body = {k: v for k, v in obj.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def public_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def sign(key: Ed25519PrivateKey, obj: dict[str, Any]) -> str:
    """The signature (128 hex digits) of `obj`'s canonical bytes."""
    return key.sign(signed_bytes(obj)).hex()


def verify(public_key: str, obj: dict[str, Any], signature: str) -> bool:
    """Whether `signature` is `public_key`'s signature of `obj`'s canonical bytes."""
    if not PUBLIC_KEY_RE.fullmatch(public_key or "") or not SIGNATURE_RE.fullmatch(signature or ""):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(bytes.fromhex(signature),
                                                                              signed_bytes(obj))
    except InvalidSignature:
        return False
    return True


def _write_key(path: Path, key: Ed25519PrivateKey) -> None:
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    make_private_dirs(path.parent)
    write_private(path, (seed.hex() + "\n").encode("ascii"))


def create(books_root: Path | str) -> Ed25519PrivateKey:
    """A new key for the books, written to BOOKS/keys/signing.key (0600); refuses to overwrite one."""
    path = key_path(books_root)
    if path.exists():
        raise SigningKeyError(f"{KEY_FILE}: the books already have a signing key")
    key = Ed25519PrivateKey.generate()
    _write_key(path, key)
    return key


def load(books_root: Path | str) -> Ed25519PrivateKey | None:
    """The key in force (None: the books have none yet); SigningKeyError when the file is not a key."""
    path = key_path(books_root)
    if not path.is_file():
        return None
    return _read_key(path)


def _read_key(path: Path) -> Ed25519PrivateKey:
    try:
        seed = bytes.fromhex(path.read_text(encoding="ascii").strip())
        if len(seed) != 32:
            raise ValueError("not 32 bytes")
        return Ed25519PrivateKey.from_private_bytes(seed)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"{path.name}: not an Ed25519 key ({type(exc).__name__})") from None


def stage(books_root: Path | str, new: Ed25519PrivateKey) -> None:
    """Write a rotation's new key beside the one in force (before the rotation's commit)."""
    _write_key(Path(books_root) / NEXT_FILE, new)


def commit_staged(books_root: Path | str, old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> None:
    """Put `new` in force and keep `old` under keys/retired/<its public key>.key (after the rotation's commit)."""
    root = Path(books_root)
    _write_key(root / RETIRED_DIR / f"{public_hex(old)}.key", old)
    _write_key(key_path(root), new)
    (root / NEXT_FILE).unlink(missing_ok=True)


def in_force(books_root: Path | str, public_key: str) -> Ed25519PrivateKey | None:
    """The private key whose public half is `public_key` (the one the journal puts in force): the key
    file's, or a staged one whose rotation was committed but not yet swapped in (swapped now)."""
    root = Path(books_root)
    key = load(root)
    if key is not None and public_hex(key) == public_key:
        return key
    staged_path = root / NEXT_FILE
    if staged_path.is_file():
        staged = _read_key(staged_path)
        if public_hex(staged) == public_key:
            if key is not None:
                commit_staged(root, key, staged)
            else:
                _write_key(key_path(root), staged)
                staged_path.unlink(missing_ok=True)
            return staged
    return None


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()
