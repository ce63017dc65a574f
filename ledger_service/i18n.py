"""The project's languages: Chinese (`zh`) and English (`en`), through one gettext catalog.

- The catalog's source is `ledger_service/translations/zh/LC_MESSAGES/ledger_service.po`
  (domain `ledger_service`; English is the msgid itself). It is compiled at first use, in
  memory (`babel.messages.mofile.write_mo`), once per process: no `.mo` file is built,
  installed or committed. The Fava pages (`fava_ext`, through Flask-Babel's locale) and
  the CLI reports (`use(language)`) read the same catalog.
- Which language: `resolve(explicit, books)`: `--lang` if given, else the books' setting
  (`BOOKS/settings.toml`, `language = "zh"`, written by `init`/`demo`/`platform` for new
  books, default `zh`), else `en`. The CLI reports (`report_language`): `--lang`, else `zh`
  when `$LC_ALL`/`$LC_MESSAGES`/`$LANG` starts with `zh`, else `en`.
- Display formats (`money`, `points`, `day`): `¥1,234.56` for CNY and `2026年11月30日` in
  Chinese; English keeps the plain figures (`1234.56`, `2026-11-30`).

Machine-readable output (JSON, exit codes, problem types, API field names) never goes
through this module.
"""

from __future__ import annotations

import gettext as _gettext
import io
import os
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"  # new books
LEGACY_LANGUAGE = "en"  # books made before the setting, and reports outside a Chinese locale
DOMAIN = "ledger_service"
TRANSLATIONS = Path(__file__).with_name("translations")
SETTINGS = "settings.toml"

_current: ContextVar[str] = ContextVar("ledger_service_language", default=LEGACY_LANGUAGE)
# The Fava pages set this to Flask-Babel's locale (fava_ext); None: `_current`.
_locale_hook: list[Callable[[], str | None]] = []


class LanguageError(ValueError):
    """A language that is not zh or en."""


def normalise(value: str) -> str:
    """`zh`, `zh_CN`, `zh-CN.UTF-8` -> zh; `en`, `en_US` -> en; anything else is refused."""
    lang = value.strip().replace("-", "_").split(".")[0].split("_")[0].lower()
    if lang not in LANGUAGES:
        raise LanguageError(f"language {value!r}: choose zh or en")
    return lang


def po_path(language: str = "zh") -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The compiled catalog of `language` (English: the identity)."""
    path = po_path(language)
    if language == "en" or not path.is_file():
        return _gettext.NullTranslations()
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out, as msgfmt does
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def current() -> str:
    for hook in _locale_hook:
        lang = hook()
        if lang is not None:
            return lang
    return _current.get()


def follow(hook: Callable[[], str | None]) -> None:
    """Take the language from `hook()` whenever it names one (the Fava pages: the request's locale)."""
    _locale_hook.append(hook)


def use(language: str) -> None:
    """The language of this thread/context's reports (the CLI sets it once per command)."""
    _current.set(normalise(language))


def gettext(message: str, **variables: object) -> str:
    text = translations(current()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations(current()).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


_ = gettext


def N_(message: str) -> str:  # noqa: N802  (gettext's name for "mark for extraction, translate later")
    return message


@dataclass(frozen=True)
class Text:
    """A message with its values, kept apart until shown: `str()` is the English (what JSON
    carries, the same in every language), `translated()` the current language's (what a text
    report prints). Values that are `Text` are rendered the same way."""

    msgid: str
    values: tuple[tuple[str, object], ...] = ()
    plural: str | None = None
    num: int = 0

    def _render(self, template: str, translate: bool) -> str:
        values: dict[str, object] = {"num": self.num} if self.plural is not None else {}
        for key, value in self.values:
            values[key] = (value.translated() if translate else str(value)) if isinstance(value, Text) else value
        return template % values if values else template

    def __str__(self) -> str:
        if self.plural is not None and self.num != 1:
            return self._render(self.plural, False)
        return self._render(self.msgid, False)

    def translated(self) -> str:
        catalog = translations(current())
        if self.plural is not None:
            return self._render(catalog.ngettext(self.msgid, self.plural, self.num), True)
        return self._render(catalog.gettext(self.msgid), True)


def T_(msgid: str, **values: object) -> Text:  # noqa: N802  (a gettext keyword: `pybabel extract -k T_`)
    return Text(msgid, tuple(values.items()))


def T_n(singular: str, plural: str, num: int, **values: object) -> Text:  # noqa: N802  (`-k T_n:1,2`)
    return Text(singular, tuple(values.items()), plural, num)


# -- which language --------------------------------------------------------------------------------


def books_language(books: Path | str) -> str | None:
    """The books' setting (`BOOKS/settings.toml`: `language = "zh"`), None when unset."""
    path = Path(books) / SETTINGS
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    value = data.get("language")
    try:
        return normalise(value) if isinstance(value, str) else None
    except LanguageError:
        return None


def write_books_language(books: Path | str, language: str) -> None:
    """Set the books' language (0600, like every file of the books)."""
    path = Path(books) / SETTINGS
    path.write_text(f'# ledger-service display settings (not rules: no figure depends on them)\n'
                    f'language = "{normalise(language)}"\n', encoding="utf-8")
    os.chmod(path, 0o600)


def resolve(explicit: str | None, books: Path | str | None = None) -> str:
    """The language of Fava on these books: --lang, else the books' setting, else en."""
    if explicit:
        return normalise(explicit)
    found = books_language(books) if books is not None else None
    return found or LEGACY_LANGUAGE


def report_language(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The language of a CLI report: --lang, else zh when the locale says so, else en."""
    if explicit:
        return normalise(explicit)
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return LEGACY_LANGUAGE


# -- display formats ---------------------------------------------------------------------------------


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def money(value: object, language: str | None = None) -> str:
    """CNY as shown: `¥1,234.56` (zh; to the fen, negatives `-¥1.00`), the plain figure in English."""
    number = _decimal(value)
    if number is None:
        return "—" if value is None or value == "" else str(value)
    if (language or current()) != "zh":
        return str(value)
    sign = "-" if number < 0 else ""
    return f"{sign}¥{abs(number).quantize(Decimal('0.01')):,}"


def grouped(value: object, language: str | None = None) -> str:
    """A number with thousands separators in Chinese (`1,234.5678`), the plain figure in English."""
    number = _decimal(value)
    if number is None:
        return "—" if value is None or value == "" else str(value)
    return f"{number:,}" if (language or current()) == "zh" else str(value)


UNIT_NAMES = {"SP": N_("SP"), "SV": N_("SV"), "CNY": N_("CNY"), "CNY/SP": N_("CNY/SP")}


def unit(code: str) -> str:
    """A unit's name in the current language (SP -> 共享积分)."""
    return gettext(UNIT_NAMES[code]) if code in UNIT_NAMES else code


def points(value: object, code: str = "SP") -> str:
    """Points with their unit name: `1,234.5678 共享积分` (zh), `1234.5678 SP` (en)."""
    return f"{grouped(value)} {unit(code)}"


def day(value: date | str | None, language: str | None = None) -> str:
    """A date as shown: `2026年11月30日` (zh), `2026-11-30` (en)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            shown = date.fromisoformat(value)
        except ValueError:
            return value
    else:
        shown = value
    if (language or current()) != "zh":
        return shown.isoformat()
    return f"{shown.year}年{shown.month}月{shown.day}日"
