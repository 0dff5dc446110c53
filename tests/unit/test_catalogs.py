"""Every language's catalog holds every message the pages, the scripts and the prompts use.

The messages are extracted from the source exactly as `make translations` does (the same
babel.cfg mapping and keywords), so a new string in a template, a script or a prompt fails
here until each shipped language translates it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg

import i18n
from controller.config import LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "N_": None}
#: (babel.cfg mapping, catalog directory, domain) of each process that speaks to people.
CATALOGS = [
    ("babel.cfg", ROOT / "web" / "translations", "messages"),
    ("voice/babel.cfg", ROOT / "voice" / "translations", "voice"),
]
TRANSLATED = [lang for lang in LANGUAGES if lang != i18n.SOURCE_LANGUAGE]
PLACEHOLDER = re.compile(r"\{\w+\}|%\(\w+\)[sd]")


def _source_messages(mapping: str) -> set[str]:
    with (ROOT / mapping).open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        assert isinstance(message, str), f"a plural message {message!r}: the pages use none"
        found.add(message)
    return found


@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("mapping, directory, domain", CATALOGS)
def test_every_message_in_use_is_translated(mapping, directory, domain, language):
    """No message is missing, empty or fuzzy; each keeps its placeholders; no catalog line is stale."""
    used = _source_messages(mapping)
    assert len(used) > 10, f"extraction found almost nothing in {mapping}"
    catalog = i18n.read_catalog(directory, domain, language)
    entries = {m.id: m for m in catalog if m.id}
    assert sorted(used - set(entries)) == [], f"{domain}/{language}: not in the catalog (run make translations)"
    untranslated = sorted(m for m in used if not entries[m].string or entries[m].fuzzy)
    assert untranslated == [], f"{domain}/{language}: untranslated or fuzzy"
    broken = sorted(m for m in used
                    if sorted(PLACEHOLDER.findall(m)) != sorted(PLACEHOLDER.findall(entries[m].string)))
    assert broken == [], f"{domain}/{language}: a translation lost or added a placeholder"
    assert sorted(set(entries) - used) == [], f"{domain}/{language}: entries no source uses (make translations)"


@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("mapping, directory, domain", CATALOGS)
def test_a_catalog_compiles_and_translates(mapping, directory, domain, language):
    """The in-memory compile gives the catalog's own translation for each message."""
    catalog = i18n.read_catalog(directory, domain, language)
    translations = i18n.translations(directory, domain, language)
    for message in catalog:
        if message.id and message.string and not message.fuzzy:
            assert translations.gettext(message.id) == message.string


def test_the_source_language_needs_no_catalog():
    """English is the messages themselves."""
    assert i18n.translations(ROOT / "web" / "translations", "messages", "en").gettext("Stop") == "Stop"


def test_a_missing_catalog_is_an_error_not_english(tmp_path):
    """A language without its catalog fails loudly; it never falls back to English unseen."""
    with pytest.raises(FileNotFoundError):
        i18n.translations(tmp_path, "messages", "zh")
