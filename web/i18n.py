"""The dashboard's languages: Flask-Babel picks each request's language, one catalog serves all.

The templates, the plain reasons (web/reasons.py) and the page scripts take
their words from ``web/translations/<language>/LC_MESSAGES/messages.po``. A
script never builds a sentence of its own: it calls ``_('...')`` (static/i18n.js)
with the English message, and each page carries the translations of every
message its scripts use, read from the scripts themselves with Babel's extractor.

The language is, in order: ``?lang=`` in the address (a patient display's
kiosk address can pin it), the ``treadmill_language`` cookie the dashboard's
language switch sets in that browser, then ``[display] language``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel.messages.extract import extract
from flask import Flask, current_app, request
from flask_babel import Babel, Domain, get_locale, gettext

import i18n
from i18n import N_
from controller.config import LANGUAGES

#: One catalog per language under here (``zh/LC_MESSAGES/messages.po``); English is the source.
TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DOMAIN = "messages"
STATIC_DIR = Path(__file__).parent / "static"
#: Set by the language switch (static/i18n.js), read here: a browser's own choice.
LANGUAGE_COOKIE = "treadmill_language"
#: Each language's name in that language: the switch offers them so, whatever the page's language.
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}
#: The calls whose first argument is a message, in Python, in templates and in scripts.
KEYWORDS = {"_": None, "gettext": None, "N_": None}


#: The accounts' roles (web.accounts.ROLES) as a page names them; an unknown role shows as it is.
ROLE_NAMES = {"therapist": N_("therapist"), "admin": N_("admin")}


def role_name(role: str) -> str:
    """``role`` in the request's language (``therapist``, ``admin``); any other word as it is."""
    return gettext(ROLE_NAMES[role]) if role in ROLE_NAMES else role


def request_language() -> str:
    """This request's language: ``?lang=``, then the browser's cookie, then ``[display] language``."""
    for asked in (request.args.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if asked in LANGUAGES:
            return asked
    return current_app.config["DISPLAY_LANGUAGE"]


class _CatalogDomain(Domain):
    """Flask-Babel's domain, reading the ``.po`` catalogs compiled in memory (i18n.translations)."""

    def get_translations(self):  # noqa: ANN201 - Flask-Babel's signature
        return i18n.translations(TRANSLATIONS_DIR, DOMAIN, str(get_locale()))


@functools.lru_cache(maxsize=1)
def script_messages() -> tuple[str, ...]:
    """Every message the page scripts pass to ``_()``, in file order, each once."""
    found: dict[str, None] = {}
    for path in sorted(STATIC_DIR.glob("*.js")):
        with path.open("rb") as fh:
            for _lineno, message, _comments, _context in extract("javascript", fh, keywords=KEYWORDS):
                if isinstance(message, str):
                    found.setdefault(message, None)
    return tuple(found)


def script_catalog() -> dict[str, str]:
    """This request's translations of the scripts' messages (empty in the source language)."""
    language = str(get_locale())
    if language == i18n.SOURCE_LANGUAGE:
        return {}
    return {message: gettext(message) for message in script_messages()}


def init_app(app: Flask) -> None:
    """Flask-Babel with our catalogs and language choice; every template gets the language and its switch."""
    babel = Babel()
    babel.init_app(app, locale_selector=request_language, default_domain=DOMAIN,
                   default_translation_directories=str(TRANSLATIONS_DIR))
    # Flask-Babel's default domain reads compiled .mo files; ours reads the .po (i18n.translations).
    babel.domain_instance = _CatalogDomain(str(TRANSLATIONS_DIR), DOMAIN)

    app.add_template_filter(role_name, "role_name")

    @app.context_processor
    def _language() -> dict[str, object]:
        return {"language": str(get_locale()), "language_names": LANGUAGE_NAMES,
                "language_cookie": LANGUAGE_COOKIE, "script_catalog": script_catalog,
                "role_name": role_name}
