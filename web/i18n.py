"""The consumer pages' languages: catalogues in config/messages, the choice, and ``t(key)``.

Every text a page shows comes from ``config/messages/<language>.toml`` (English
and Chinese), loaded and validated once: both catalogues must have exactly the
same keys and, for each key, the same ``{placeholders}``, so a page can never
show a key in one language that the other lacks. Texts that already live in
config (band, dimension, purpose, reason and tip texts) are read from there,
never copied.

The language is the ``lang`` cookie when it names a known language, else the
best match of the browser's ``Accept-Language``, else English. The switch on
every page is a small POST form that sets the cookie, so the choice sticks.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, g, make_response, redirect, request
from werkzeug.wrappers import Response

import config
from config.documents import read_toml
from web.accounts import require_csrf, safe_next
from web.state import current_state

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
MESSAGES_DIR = Path(config.__file__).with_name("messages")

bp = Blueprint("i18n", __name__)


class CatalogueError(ValueError):
    """A message catalogue is invalid; ``str()`` is one line naming the file and key."""


def load_catalogues(folder: Path | None = None) -> dict[str, dict[str, str]]:
    """language -> flat key -> text, validated (same keys and placeholders in every language)."""
    return _load(str(folder or MESSAGES_DIR))


@cache
def _load(folder: str) -> dict[str, dict[str, str]]:
    catalogues = {language: _flatten(read_toml(Path(folder) / f"{language}.toml", CatalogueError),
                                     where=f"{language}.toml")
                  for language in LANGUAGES}
    reference = catalogues[DEFAULT_LANGUAGE]
    for language, messages in catalogues.items():
        missing = sorted(set(reference) - set(messages)) or sorted(set(messages) - set(reference))
        if missing:
            raise CatalogueError(f"{language}.toml: key {missing[0]} is not in every catalogue")
        for key, text in messages.items():
            if _fields(text) != _fields(reference[key]):
                raise CatalogueError(f"{language}.toml: {key}: placeholders differ from "
                                     f"{DEFAULT_LANGUAGE}.toml")
    return catalogues


def _flatten(document: dict[str, Any], *, where: str, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in document.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, where=where, prefix=f"{key}."))
        elif isinstance(value, str) and value.strip():
            flat[key] = value
        else:
            raise CatalogueError(f"{where}: {key}: must be a non-empty text")
    return flat


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def translate(key: str, language: str, **values: Any) -> str:
    """The text of ``key`` in ``language``, its placeholders filled; KeyError for an unknown key."""
    text = load_catalogues()[language][key]
    return text.format(**values) if values else text


def message_or(key: str, default: str) -> str:
    """The text of ``key`` when the catalogues have it, else ``default`` (a code from data)."""
    if key in load_catalogues()[DEFAULT_LANGUAGE]:
        return translate(key, current_language())
    return default


def choose_language(cookie: str | None, accept_language: Any) -> str:
    """The cookie's language when known, else the best Accept-Language match, else English."""
    if cookie in LANGUAGES:
        return str(cookie)
    best = accept_language.best_match(LANGUAGES) if accept_language else None
    return str(best) if best in LANGUAGES else DEFAULT_LANGUAGE


def current_language() -> str:
    """This request's language (chosen once per request)."""
    if "language" not in g:
        g.language = choose_language(request.cookies.get(COOKIE), request.accept_languages)
    return str(g.language)


def t(key: str, **values: Any) -> str:
    """The jinja global: ``{{ t("nav.score") }}`` in the request's language."""
    return translate(key, current_language(), **values)


def localized(item: Any, field: str | None = None) -> str:
    """An item's text in the request's language: ``field_en``/``field_zh``, or ``en``/``zh`` alone.

    ``item`` is a dict or an object (a band, a dimension, a reason, a tip...).
    """
    language = current_language()
    wanted, fallback = ((language, DEFAULT_LANGUAGE) if field is None
                        else (f"{field}_{language}", f"{field}_{DEFAULT_LANGUAGE}"))
    if isinstance(item, dict):
        return str(item.get(wanted) or item.get(fallback, ""))
    return str(getattr(item, wanted, None) or getattr(item, fallback))


def other_languages() -> list[str]:
    """The languages other than the request's (a consent's purpose is shown in all of them)."""
    return [language for language in LANGUAGES if language != current_language()]


def language_names() -> dict[str, str]:
    """Each language in its own name, for the switch."""
    return {language: translate("language.name", language) for language in LANGUAGES}


def init_app(app: Flask) -> None:
    """Load the catalogues now (a bad one stops the app), add the jinja globals and the switch."""
    load_catalogues()
    app.jinja_env.globals.update(t=t, lang=current_language, localized=localized, message_or=message_or,
                                 other_languages=other_languages,
                                 language_names=language_names)
    app.register_blueprint(bp)


@bp.post("/language")
def switch_language() -> Response:
    """Remember the chosen language in a cookie and go back to the page the switch was on."""
    require_csrf()
    chosen = request.form.get("lang", "")
    response = make_response(redirect(safe_next(request.form.get("back")), code=303))
    if chosen in LANGUAGES:
        response.set_cookie(COOKIE, chosen, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                            secure=current_state().settings.accounts_cookie_secure)
    return response
