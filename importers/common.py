"""What the two CSV formats share: decoding, strict dates and amounts, located errors.

Every number is a `decimal.Decimal` parsed from the cell's text (never a float).
A malformed cell raises `FormatError` naming the file, the line (1 = the first
line of the file, as an editor shows it) and the column.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Generic, TypeVar

# Encodings tried in order. GB18030 is a superset of GBK (and of GB2312): any GBK
# export decodes to the same text, and the rare characters GBK lacks do too.
ENCODINGS = ("utf-8-sig", "gb18030")

# The most a header is looked for (bank exports may open with a few lines about the account).
HEADER_SEARCH_LINES = 20

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$|^(\d{4})(\d{2})(\d{2})$")
_TIME_RE = re.compile(r"^(\d{2}):?(\d{2})(?::?(\d{2}))?$")
# 1234.50, 1,234.50, 1,234,567 — thousands separators only where they belong.
_AMOUNT_RE = re.compile(r"^([+-]?)((?:\d{1,3}(?:,\d{3})+)|\d+)(?:\.(\d+))?$")
_EMPTY_AMOUNTS = {"", "-", "--", "—"}
_CURRENCY_MARKS = ("¥", "￥", "CNY", "RMB", "元")
CNY_PLACES = 2
MAX_CNY = Decimal("10000000000000")


class FormatError(ValueError):
    """A file that is not in the expected format, located to its line and column."""

    def __init__(self, path: str | Path, line: int | None, column: str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.message = message
        where = self.path
        if line is not None:
            where += f": line {line}"
        if column:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")


def decode(data: bytes, path: str | Path = "<data>") -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without BOM) first, then GBK/GB18030."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), ("gbk" if encoding == "gb18030" else "utf-8")
        except UnicodeDecodeError:
            continue
    raise FormatError(path, None, None, "neither UTF-8 nor GBK text")


def read_text(path: str | Path) -> tuple[str, str]:
    return decode(Path(path).read_bytes(), path)


def head_lines(path: str | Path, limit: int = HEADER_SEARCH_LINES, max_bytes: int = 65536) -> list[str]:
    """The first lines of a file, decoded; [] if it is not text. Never raises (for identify)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes)
    except OSError:
        return []
    if b"\x00" in data:
        return []
    raw_lines = data.split(b"\n")
    if len(data) == max_bytes and len(raw_lines) > 1:
        raw_lines = raw_lines[:-1]  # the last one may be cut mid-character
    out: list[str] = []
    for raw in raw_lines[:limit]:
        try:
            text, _ = decode(raw)
        except FormatError:
            return out
        out.append(text.rstrip("\r"))
    if out and out[0].startswith("\ufeff"):
        out[0] = out[0][1:]
    return out


def split_row(line: str) -> list[str]:
    """One CSV line's cells, stripped."""
    try:
        rows = list(csv.reader(io.StringIO(line)))
    except csv.Error:
        return []
    return [cell.strip() for cell in rows[0]] if rows else []


def rows_of(text: str, path="<csv>"):
    """(line number, cells) for every non-blank CSV record of `text`."""
    reader = csv.reader(io.StringIO(text))
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FormatError(path, reader.line_num, None, f"not CSV: {exc}") from None
        line = start
        start = reader.line_num + 1
        cells = [cell.strip() for cell in cells]
        if any(cells):
            yield line, cells


@dataclass(frozen=True)
class CsvRow:
    """One record of a storefront export: its line and every column's cell, stripped ('' when empty;
    `EXTRA` holds the cells past the header's columns, when there are any)."""

    line: int
    fields: dict[str, str]

    def cell(self, name: str) -> str:
        return self.fields.get(name, "")


EXTRA = "__extra__"
Row = TypeVar("Row", bound=CsvRow)


@dataclass
class CsvFile(Generic[Row]):
    path: str
    encoding: str
    rows: list[Row]


@dataclass(frozen=True)
class CsvShape(Generic[Row]):
    """A storefront export's header: every required column, each column once, no other. `what`
    names the format in errors ("an order export")."""

    what: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    row_type: type[Row]

    def header_ok(self, cells: list[str]) -> bool:
        return (bool(cells) and set(self.required) <= set(cells) and set(cells) <= set(self.columns)
                and len(set(cells)) == len(cells))

    def looks_like(self, path: str | Path) -> bool:
        lines = head_lines(path, limit=1)
        return bool(lines) and self.header_ok(split_row(lines[0]))

    def read(self, path: str | Path) -> CsvFile[Row]:
        """The rows of the file, as text. A wrong header is a `FormatError`; the cells are checked
        when each row is booked (a bad row is rejected alone)."""
        text, encoding = read_text(path)
        rows = list(rows_of(text, path))
        if not rows:
            raise FormatError(path, 1, None, "empty file: expected the header row " + ",".join(self.columns))
        header_line, header = rows[0]
        if not self.header_ok(header):
            raise FormatError(path, header_line, None, f"not {self.what} header ({self._why(header)}); "
                                                       f"expected the columns {','.join(self.columns)}")
        out = []
        for line, cells in rows[1:]:
            extra = cells[len(header):]
            fields = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(header)}
            if any(extra):
                fields[EXTRA] = ",".join(extra)
            out.append(self.row_type(line, fields))
        return CsvFile(str(path), encoding, out)

    def _why(self, header: list[str]) -> str:
        missing = [c for c in self.required if c not in header]
        unknown = [c for c in header if c not in self.columns]
        why = []
        if missing:
            why.append("missing " + ",".join(missing))
        if unknown:
            why.append("unknown " + ",".join(repr(c) for c in unknown))
        if len(set(header)) != len(header):
            why.append("a column is repeated")
        return "; ".join(why)


def row_day(row: CsvRow, path: str | Path = "") -> date | None:
    """The row's business day (None: today). FormatError names line and column."""
    text = row.cell("date")
    if not text:
        return None
    return parse_day(text, path=path, line=row.line, column="date")


def extra_cells(row: CsvRow) -> str | None:
    """The cells past the header's columns, joined, or None."""
    return row.fields.get(EXTRA)


def parse_day(text: str, *, path, line: int, column: str) -> date:
    """YYYY-MM-DD or YYYYMMDD, a real calendar date."""
    value = text.strip()
    match = _DATE_RE.match(value)
    if not match:
        raise FormatError(path, line, column, f"{text!r} is not a date (YYYY-MM-DD or YYYYMMDD)")
    y, m, d = [g for g in match.groups() if g is not None]
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise FormatError(path, line, column, f"{text!r} is not a calendar date") from None


def parse_time(text: str, *, path, line: int, column: str) -> str:
    """HH:MM:SS, HHMMSS or HH:MM, as 'HH:MM:SS'; '' when empty."""
    value = text.strip()
    if not value:
        return ""
    match = _TIME_RE.match(value)
    if not match:
        raise FormatError(path, line, column, f"{text!r} is not a time (HH:MM:SS or HHMMSS)")
    h, m, s = match.group(1), match.group(2), match.group(3) or "00"
    if int(h) > 23 or int(m) > 59 or int(s) > 59:
        raise FormatError(path, line, column, f"{text!r} is not a time of day")
    return f"{h}:{m}:{s}"


def parse_cny(text: str, *, path, line: int, column: str | None, signed: bool = False,
              empty_is_zero: bool = True) -> Decimal:
    """A CNY amount: at most 2 decimals, thousands separators allowed ("1,234.50").

    Empty cells ('', '-', '--') are zero when `empty_is_zero`. A sign is refused
    unless `signed`.
    """
    value = text.strip().replace(" ", "").replace("\u00a0", "")
    for mark in _CURRENCY_MARKS:
        if value.startswith(mark):
            value = value[len(mark):]
        elif value.endswith(mark):
            value = value[: -len(mark)]
    if value in _EMPTY_AMOUNTS:
        if empty_is_zero:
            return Decimal("0.00")
        raise FormatError(path, line, column, "an amount is required")
    match = _AMOUNT_RE.match(value)
    if not match:
        raise FormatError(path, line, column, f"{text!r} is not an amount (like 1234.50 or 1,234.50)")
    sign, whole, places = match.groups()
    if sign and not signed:
        raise FormatError(path, line, column, f"{text!r}: a sign is not expected in this column")
    if places is not None and len(places.rstrip("0")) > CNY_PLACES:
        raise FormatError(path, line, column, f"{text!r} has more than {CNY_PLACES} decimals")
    try:
        number = Decimal(f"{sign}{whole.replace(',', '')}.{places or '0'}")
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        raise FormatError(path, line, column, f"{text!r} is not an amount") from None
    if abs(number) > MAX_CNY:
        raise FormatError(path, line, column, f"{text!r} exceeds the limit of {MAX_CNY}")
    return number.quantize(Decimal("0.01"))


class NamedImporter:
    """What both importers share: a name (configurable, else module.Class) and an archive file name.

    Mixed into `beangulp.Importer` subclasses, which set `_name` and `_filename`."""

    _name: str | None = None
    _filename: str | None = None

    @property
    def name(self) -> str:
        return self._name or f"{self.__class__.__module__}.{self.__class__.__name__}"

    def filename(self, filepath: str) -> str | None:
        return self._filename
