"""The HTTP shape of a request, checked before anything reaches the controller.

Only what HTTP itself needs is checked here: the body is a JSON object holding
only the keys the endpoint reads, within the size the dashboard accepts, and a
query parameter has the type its call needs. Every value rule (ranges, patterns,
choices, lengths) is the controller's: its refusal comes back as a 400 naming
the field and the allowed range (web/errors.py), so no rule has two homes.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any, Iterable

from flask import request

from web.errors import ApiError

#: Longest request body a command accepts (the limits form: four numbers).
MAX_BODY_BYTES = 4096
#: Longest text query parameter passed on: keeps the request far inside the controller's 16 KiB line.
QUERY_TEXT_MAX_CHARS = 32
#: Deepest nesting of arrays and objects passed on. No body the API takes nests more than two levels;
#: every step that handles a value recursively (copying, repr in an error message, on the controller's
#: decision thread too) fails near a thousand levels, which a 4 KiB body can reach.
MAX_BODY_DEPTH = 100


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


def field_error(field: str, value: Any, message: str, key: str | None = None) -> dict[str, Any]:
    """One entry of an error body's ``errors`` list, shaped as the controller's (``FieldError.as_dict``).

    ``field`` names the field, ``key`` is the bare name a form input carries (``field`` itself unless
    given), and ``message`` says what is allowed in words: a page writes "<its label>: <message>", so a
    leading "<field>: " is dropped from it.
    """
    message = message.removeprefix(f"{field}: ")
    return {"field": field, "key": field if key is None else key, "value": _shown(value), "message": message}


def invalid(errors: list[dict[str, Any]]) -> ApiError:
    """A 400 naming every field at fault; its message names each field before what is wrong with it."""
    return ApiError(400, "invalid", "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"]
                                              for e in errors), errors)


def _not_an_object(names: str) -> ApiError:
    return ApiError(400, "invalid", f"the body must be a JSON object{names}",
                    [field_error("body", None, "the body must be a JSON object", key="")])


def deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def json_object(allowed: Iterable[str] | None, required: Iterable[str] = (),
                max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is {} if nothing is required.

    ``allowed`` names the keys the endpoint reads (any other is refused, naming it);
    None passes every key on, for a body the controller takes whole and checks itself.
    """
    allowed = None if allowed is None else tuple(allowed)
    required = tuple(required)
    names = "" if allowed is None else f" (fields: {', '.join(allowed) or 'none'})"
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # The CSRF check has already parsed (and consumed) a form body, so it
        # would look empty below: refuse it outright rather than read it as {}.
        raise _not_an_object(f"{names}, not a form")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise ApiError(413, "too_large", f"request body over {max_bytes} bytes")
    if not raw.strip() and not required:
        return {}
    body = request_json()
    if not isinstance(body, dict):
        raise _not_an_object(names)
    if deeper_than(body, MAX_BODY_DEPTH):
        raise ApiError(400, "invalid", f"the body nests arrays and objects over {MAX_BODY_DEPTH} levels deep",
                       [field_error("body", None, f"the body must nest at most {MAX_BODY_DEPTH} levels deep",
                                    key="")])
    errors = [] if allowed is None else [
        field_error(key, body[key], f"unknown field '{key}'; allowed: {', '.join(allowed) or 'none'}")
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
    return [field_error(key, None, "is required") for key in required if key not in body]


def query_int(name: str, default: int) -> int:
    """A whole-number query parameter (decimal digits), or a 400 naming it; its range is the controller's."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    try:
        # isdecimal, not isdigit: int() refuses digits such as "²" (and more than 4300 digits: ValueError);
        # nor int() alone, which reads "1_0" and "+1".
        return int(text) if text.isdecimal() else _refuse_query(name, raw)
    except ValueError:
        return _refuse_query(name, raw)


def _refuse_query(name: str, raw: str) -> int:
    raise invalid([field_error(name, raw, "must be a whole number (decimal digits)")])


def query_text(name: str, max_len: int = QUERY_TEXT_MAX_CHARS) -> str | None:
    """An optional short text query parameter, or a 400 naming it; which values it may take is the controller's."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) <= max_len:
        return raw
    raise invalid([field_error(name, raw, f"must be at most {max_len} characters")])


def effective_ranges(reply: Any) -> dict[str, dict[str, Any]]:
    """Each limit's one allowed range from the controller's ``limits`` reply: its ``ranges`` entry
    narrowed by the installer's ``ceilings`` (``max_<limit>`` lowers the top, ``min_<limit>`` raises
    the bottom). Display only: the controller checks every value (also against [safety]
    min_speed_kmh, which a cap's range here does not know)."""
    if not isinstance(reply, dict):
        return {}
    ranges = reply.get("ranges") if isinstance(reply.get("ranges"), dict) else {}
    ceilings = reply.get("ceilings") if isinstance(reply.get("ceilings"), dict) else {}
    out: dict[str, dict[str, Any]] = {}
    for name, rng in ranges.items():
        if not isinstance(rng, dict):
            continue
        lo, hi = rng.get("min"), rng.get("max")
        top, bottom = ceilings.get(f"max_{name}"), ceilings.get(f"min_{name}")
        if _number(top) and _number(hi):
            hi = min(hi, top)
        if _number(bottom) and _number(lo):
            lo = max(lo, bottom)
        if _number(lo) and _number(hi):
            hi = max(lo, hi)
        out[name] = {**rng, "min": lo, "max": hi}
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
