"""Beancount's pickle cache, seen from the books (issue 10 §6).

`bean-check`, `bean-query` and Beancount's loader keep the result of a load in
`.FILE.picklecache` beside the file and reuse it while the files' modification times say
nothing changed: an edit that keeps a day file's size and mtime then passes `bean-check`
unseen, and a planted cache file is unpickled, i.e. runs its code on the auditor's machine.
The auditor's recipes turn the cache off (`bean-check -C`, `BEANCOUNT_DISABLE_LOAD_CACHE=1`);
`verify` never loads one (it parses the journal itself) and warns about any it finds.
"""

from __future__ import annotations

from pathlib import Path

PATTERN = "*.picklecache"
# A limit on the warnings listed (the first ones say what to delete).
MAX_WARNINGS = 50


def pickle_cache_warnings(books_root: Path | str) -> list[str]:
    """One warning per pickle cache file in the books (relative path), at most MAX_WARNINGS."""
    root = Path(books_root)
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob(PATTERN) if p.is_file())
    return [f"{rel}: a Beancount pickle cache in the books: plain bean-check or bean-query would trust it "
            f"instead of reading the journal, and unpickling it runs any code in it; delete it and use "
            f"`bean-check -C` (or BEANCOUNT_DISABLE_LOAD_CACHE=1)" for rel in found[:MAX_WARNINGS]]
