"""The platform's directory: each holder's display name (`BOOKS/names.tsv`), for people only.

A holder's id stays ASCII everywhere (journal, API, proofs); its name (张伟, 南山区鲜果便利店)
is display data the platform may export beside the books: one line per holder,
`id<TAB>name`, UTF-8, lines starting with `#` ignored, mode 0600. No rule, no hash and no
figure reads it: the Holder page shows the name beside the id when the file has one.
`ledger-service demo` writes the names of its members and stores (`demo.member_name`,
`demo.store_name`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

NAMES = "names.tsv"
_cache: dict[Path, tuple[int, dict[str, str]]] = {}


def read(books: Path | str) -> dict[str, str]:
    """id -> name (empty when the books have no directory), re-read when the file changes."""
    path = Path(books) / NAMES
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    names: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, name = line.partition("\t")
        if sep and key and not key.startswith("#"):
            names[key.strip()] = name.strip()
    _cache[path] = (stamp, names)
    return names


def write(books: Path | str, names: Mapping[str, str]) -> None:
    """Add `names` to the directory (an id already there takes the new name)."""
    path = Path(books) / NAMES
    merged = {**read(books), **names}
    lines = ["# id\tname (display only: no rule, hash or figure reads this file)"]
    lines += [f"{key}\t{merged[key]}" for key in sorted(merged)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
