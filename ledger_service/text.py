"""Which characters a string given to the service may hold: the one text rule (issue 10 §5).

Every string that reaches the books — each field of an event (`rules.events.parse`, so the
API, the importers and the CLI alike) and each string of an API request (JSON keys and
values, path segments, query parameters) — is refused if it holds one of these code points:

- U+0000–U+001F and U+007F–U+009F: the C0 controls (TAB, LF and CR included), DEL and the
  C1 controls (U+0085 NEXT LINE included);
- U+D800–U+DFFF: surrogates (a lone surrogate cannot be written as UTF-8);
- U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR (line breaks to `str.splitlines`);
- the bidirectional formatting characters: U+061C, U+200E, U+200F (marks), U+202A–U+202E
  (embeddings, overrides), U+2066–U+2069 (isolates);
- U+FEFF (byte order mark / zero width no-break space);
- the 66 noncharacters: U+FDD0–U+FDEF and the last two code points of every plane
  (U+FFFE, U+FFFF, U+1FFFE, U+1FFFF, … U+10FFFF).

The set is fixed code points, not Unicode categories read from `unicodedata`, so a journal
replays the same on any Python version. Everything else is allowed (CJK, emoji and their
zero-width joiners, no-break spaces, right-to-left letters). Pure: no IO.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import Invalid

RULE = "input.bad_text"

REFUSED_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F), (0x007F, 0x009F),
    (0xD800, 0xDFFF),
    (0x2028, 0x2029),
    (0x061C, 0x061C), (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069),
    (0xFEFF, 0xFEFF),
    (0xFDD0, 0xFDEF),
    *((plane * 0x10000 + 0xFFFE, plane * 0x10000 + 0xFFFF) for plane in range(17)),
)

REFUSED = re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in REFUSED_RANGES) + "]")

_NAMES = {0x00: "NULL", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED", 0x0D: "CARRIAGE RETURN",
          0x1B: "ESCAPE", 0x7F: "DELETE", 0x85: "NEXT LINE"}


def refused_char(text: str) -> str | None:
    """The first refused character of `text`, or None."""
    found = REFUSED.search(text)
    return found.group() if found else None


def describe(ch: str) -> str:
    """`U+2028 LINE SEPARATOR`; `U+D800 (a lone surrogate)` where Unicode gives no name."""
    point = ord(ch)
    name = _NAMES.get(point) or unicodedata.name(ch, "")
    if name:
        return f"U+{point:04X} {name}"
    if 0xD800 <= point <= 0xDFFF:
        what = "a lone surrogate"
    elif point <= 0x9F:
        what = "a control character"
    else:
        what = "a noncharacter"
    return f"U+{point:04X} ({what})"


def check(value: str, field: str) -> str:
    """`value` if it holds no refused character, else `Invalid` (422 `input.bad_text`) naming
    the field and the code point: `goods: U+2028 LINE SEPARATOR is not allowed`."""
    ch = refused_char(value)
    if ch is not None:
        raise Invalid(RULE, f"{field}: {describe(ch)} is not allowed", field)
    return value


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """A count and its noun as a reader says it: "1 day", "3 days", "0 payouts" (issue 14)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"
