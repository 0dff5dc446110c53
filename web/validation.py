"""Request-body checks in the web layer, before anything reaches the controller.

Reject, don't clamp: each problem becomes a 400 whose errors name the field and
the allowed range, and the controller receives no command. The controller
checks every value again; these checks only keep nonsense off its socket and
give the page field-level messages.
"""

from __future__ import annotations

import math
import reprlib
import unicodedata
from typing import Any, Iterable

from flask import request

from web.errors import ApiError

#: Longest request body any API endpoint accepts (limits form: four numbers).
MAX_BODY_BYTES = 4096


def _shown(value: Any) -> Any:
    """A value fit to echo in an error body (finite, short, JSON-safe)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) < 10 ** 40 or isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and len(value) <= 40:
        return value
    # reprlib: bounded for any depth of nesting and any size of integer.
    return reprlib.repr(value)[:40]


def _g(value: int | float) -> str:
    """A number as the messages show it ({:g}); an integer past a float's range by its digits."""
    try:
        return f"{value:g}"
    except OverflowError:
        return f"an integer of {len(str(abs(value)))} digits"


def field_error(field: str, value: Any, message: str) -> dict[str, Any]:
    """One entry of an error body's ``errors`` list."""
    return {"field": field, "value": _shown(value), "message": message}


def invalid(errors: list[dict[str, Any]]) -> ApiError:
    """A 400 naming every field at fault."""
    return ApiError(400, "invalid", "; ".join(e["message"] for e in errors), errors)


def json_object(allowed: Iterable[str], required: Iterable[str] = (),
                max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object with only ``allowed`` keys; an empty body is {} if nothing is required."""
    allowed = tuple(allowed)
    required = tuple(required)
    names = ", ".join(allowed) or "no fields"
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # The CSRF check has already parsed (and consumed) a form body, so it
        # would look empty below: refuse it outright rather than read it as {}.
        raise ApiError(400, "invalid", f"the body must be a JSON object (fields: {names}), not a form",
                       [field_error("body", None, "the body must be a JSON object")])
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise ApiError(413, "too_large", f"request body over {max_bytes} bytes")
    if not raw.strip() and not required:
        return {}
    body = request_json()
    if not isinstance(body, dict):
        raise ApiError(400, "invalid", f"the body must be a JSON object (fields: {names})",
                       [field_error("body", None, "the body must be a JSON object")])
    errors = [field_error(key, body[key], f"unknown field '{key}'; allowed: {', '.join(allowed) or 'none'}")
              for key in body if key not in allowed]
    errors += missing_errors(body, required)
    if errors:
        raise invalid(errors)
    return body


def request_json() -> Any:
    """The body parsed as JSON whatever its content type; None if it is not JSON.

    Nesting deeper than the recursion limit (about a thousand brackets) makes the parser raise
    RecursionError, which ``silent=True`` does not catch.
    """
    try:
        return request.get_json(force=True, silent=True)
    except RecursionError:
        return None


def missing_errors(body: dict[str, Any], required: Iterable[str]) -> list[dict[str, Any]]:
    """A "required" error for each of ``required`` that ``body`` lacks."""
    return [field_error(key, None, f"{key}: required") for key in required if key not in body]


def number_error(field: str, value: Any, lo: float, hi: float, unit: str, note: str = "") -> dict[str, Any] | None:
    """None if ``value`` is a finite number within [lo, hi]; else the field error naming the range."""
    allowed = f"{field}: must be a number from {lo:g} to {hi:g} {unit}".rstrip() + (f" ({note})" if note else "")
    # bool is an int in Python; JSON true is not a speed.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return field_error(field, value, f"{allowed}; got {type(value).__name__}")
    # An int of any size is finite (math.isfinite() overflows on one past a float's range).
    if isinstance(value, float) and not math.isfinite(value):
        return field_error(field, value, f"{allowed}; got a non-finite number")
    if not lo <= value <= hi:
        return field_error(field, value, f"{allowed}; got {_g(value)}")
    return None


def integer_error(field: str, value: Any, lo: int, hi: int, unit: str = "", note: str = "") -> dict[str, Any] | None:
    """None if ``value`` is a whole number (a JSON integer) within [lo, hi]; else the field error naming the range."""
    allowed = f"{field}: must be a whole number from {lo} to {hi} {unit}".rstrip() + (f" ({note})" if note else "")
    if isinstance(value, bool) or not isinstance(value, int):
        return field_error(field, value, f"{allowed}; got {type(value).__name__}")
    if not lo <= value <= hi:
        return field_error(field, value, f"{allowed}; got {value}")
    return None


def text_error(field: str, value: Any, min_len: int, max_len: int,
               *, single_line: bool = True) -> dict[str, Any] | None:
    """None if ``value`` is text of ``min_len``..``max_len`` characters (no control characters if ``single_line``)."""
    rule = f"{min_len} to {max_len} characters" + (", no control characters" if single_line else "")
    if not isinstance(value, str):
        return field_error(field, value, f"{field}: must be text of {rule}; got {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        return field_error(field, value, f"{field}: must be text of {rule}; got {len(value)} characters")
    if single_line and any(unicodedata.category(ch) == "Cc" for ch in value):
        return field_error(field, value, f"{field}: must be text of {rule}; got a control character")
    if any(unicodedata.category(ch) == "Cs" for ch in value):  # a lone surrogate, e.g. JSON "\\ud800"
        return field_error(field, value, f"{field}: must be text of {rule}; got a lone surrogate (not a character)")
    return None


def choice_error(field: str, value: Any, choices: Iterable[str]) -> dict[str, Any] | None:
    """None if ``value`` is one of ``choices``; else the field error listing them."""
    choices = tuple(choices)
    if isinstance(value, str) and value in choices:
        return None
    return field_error(field, value, f"{field}: must be one of {', '.join(choices)}")


def query_int(name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi]; 400 naming it otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    try:
        # isdecimal, not isdigit: int() refuses digits such as "²" (and more than 4300 digits: ValueError).
        value = int(text) if text.isdecimal() else None
    except ValueError:
        value = None
    if value is not None and lo <= value <= hi:
        return value
    raise invalid([field_error(name, raw, f"{name}: must be a whole number from {lo} to {hi}")])


def query_word(name: str, max_len: int = 32) -> str | None:
    """An optional short identifier-like query parameter (letters, digits, _ and -)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) <= max_len and raw.replace("_", "").replace("-", "").isalnum() and raw.isascii():
        return raw
    raise invalid([field_error(name, raw, f"{name}: up to {max_len} letters, digits, _ or -")])
