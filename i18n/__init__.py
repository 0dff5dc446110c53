"""Message catalogs for the dashboard and the voice: gettext ``.po`` files, read with Babel.

Each process that speaks to people keeps its own catalogs beside its code
(``web/translations``, ``voice/translations``, one ``.po`` per language and
domain). They are compiled in memory when first used, so no compiled ``.mo``
can drift from its ``.po`` in the repo or need a build step on the Pi. English
is the source language: its messages are the ids, and it needs no catalog.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: The language the messages are written in: its catalog is the messages themselves.
SOURCE_LANGUAGE = "en"


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for "mark, translate later"
    """Mark ``message`` for the catalog without translating it now (tables built at import time)."""
    return message


def po_path(directory: Path, domain: str, language: str) -> Path:
    """Where ``language``'s catalog of ``domain`` lives under ``directory``."""
    return Path(directory) / language / "LC_MESSAGES" / f"{domain}.po"


def read_catalog(directory: Path, domain: str, language: str) -> Catalog:
    """The parsed ``.po`` catalog (FileNotFoundError when the language has none)."""
    with po_path(directory, domain, language).open("rb") as fh:
        return read_po(fh, locale=language, domain=domain)


@functools.lru_cache(maxsize=None)
def translations(directory: Path, domain: str, language: str) -> NullTranslations:
    """gettext translations of ``domain`` into ``language``; the source language translates to itself.

    A missing catalog for any other language is an error, never a silent fall-back to English:
    a clinic that chose a language gets it or a clear failure.
    """
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    catalog = read_catalog(Path(directory), domain, language)
    buffer = io.BytesIO()
    # Fuzzy entries are guesses of the update tool, not translations: never shown.
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=domain)
