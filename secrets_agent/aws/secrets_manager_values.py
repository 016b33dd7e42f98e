"""Pure shaping of Secrets Manager values: text from a response, JSON objects into variables.

Decisions (docs/secrets-manager.md):

- ``SecretString`` is used as is; ``SecretBinary`` is used when it is valid UTF-8, else 65.
- A value that parses as a JSON **object** is expanded, one variable per key; any other value
  (not JSON, or JSON that is not an object: ``"x"``, ``123``, ``[1]``, ``null``) is one variable
  holding the value exactly as stored.
- Expanded values: strings as they are; numbers exactly as written in the secret (``1.50``
  stays ``1.50``); ``true``/``false``; ``null``, a nested object or an array is 65. A duplicated
  key, or a key without a letter or digit (it would silently name the secret itself), is 65.
- A reference with a JSON key needs the value to be a JSON object (else 65); a missing key is 66;
  a ``null``, nested object or array under the key is 65.
- ``NaN``/``Infinity`` are not JSON: such a value is not expanded.
- An object nested past the parser's recursion limit is 65 (it holds nested objects); an array
  nested that deep is one value, like any array.

Error messages name secrets and keys, never values, and never chain an exception whose text
could quote part of a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from secrets_agent.core.errors import DataError, NotFoundError
from secrets_agent.output.logs import Logger

_ALNUM = re.compile(r"[A-Za-z0-9]")


class _Number(str):
    """A JSON number token, kept as written."""


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NotJson(Exception):
    pass


class _TooDeep(Exception):
    """Nested past the parser's recursion limit: JSON containers inside containers."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _constant(token: str) -> Any:
    raise _NotJson(token)


def parse_json(text: str) -> Any:
    """The parsed value; raises _NotJson when ``text`` is not strict JSON, _Duplicate on a key,
    _TooDeep when containers nest past the recursion limit."""
    try:
        return json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_constant,
            object_pairs_hook=_pairs,
        )
    except RecursionError:
        raise _TooDeep from None
    except ValueError as exc:
        raise _NotJson from exc


def _valid_text(value: str, origin: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Not chained: the codec's message quotes the offending character.
        raise DataError(f"{origin} holds text that is not valid Unicode") from None
    return value


def text_of(entry: Mapping[str, Any], origin: str) -> str:
    """The secret's text from a GetSecretValue / SecretValueEntry mapping."""
    text = entry.get("SecretString")
    if isinstance(text, str):
        return _valid_text(text, origin)
    blob = entry.get("SecretBinary")
    if isinstance(blob, (bytes, bytearray)):
        try:
            return bytes(blob).decode("utf-8")
        except UnicodeDecodeError:
            # Not chained: the codec's message quotes a byte of the value.
            raise DataError(
                f"{origin} is a binary secret that is not UTF-8 text",
                hint="store it base64-encoded as a SecretString",
            ) from None
    raise NotFoundError(f"{origin} has no value", hint="put a value in the secret")


def _scalar(value: Any, origin: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _valid_text(str(value), origin)
    kind = "null" if value is None else "an array" if isinstance(value, list) else "a nested object"
    raise DataError(
        f"{origin} is {kind}; only strings, numbers and booleans can become variables",
        hint="flatten the secret's JSON, or store that part as its own secret",
    )


def expand(text: str, *, name: str, key: str, log: Logger) -> list[tuple[str, str, str]]:
    """(item key, source name, value) for one secret read under a prefix."""
    try:
        parsed = parse_json(text)
    except _Duplicate as exc:
        raise DataError(
            f"secret {name!r} has JSON key {exc.key!r} twice", hint="remove the duplicate key"
        ) from None
    except _TooDeep:
        if text.lstrip().startswith("{"):
            raise DataError(
                f"secret {name!r} is a JSON object nested too deeply to expand",
                hint="flatten the secret's JSON",
            ) from None
        return [(key, name, text)]
    except _NotJson:
        stripped = text.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            log.warning(
                "secret looks like a JSON object but is not valid JSON; used as one value",
                name=name,
            )
        return [(key, name, text)]
    if not isinstance(parsed, dict):
        return [(key, name, text)]
    if not parsed:
        log.warning("secret is an empty JSON object; it gives no variable", name=name)
    out: list[tuple[str, str, str]] = []
    for json_key, value in parsed.items():
        origin = f"secret {name!r} key {json_key!r}"
        if not _ALNUM.search(json_key):
            raise DataError(
                f"{origin} has no letter or digit, so it gives no variable name",
                hint="rename the JSON key",
            )
        out.append((f"{key}/{json_key}", f"{name}:{json_key}", _scalar(value, origin)))
    return out


def scalar_of(text: str, json_key: str, *, origin: str) -> str:
    """The value under ``json_key`` of the JSON object ``text``, for a reference."""
    try:
        parsed = parse_json(text)
    except _Duplicate as exc:
        raise DataError(
            f"{origin}: the secret has JSON key {exc.key!r} twice", hint="remove the duplicate key"
        ) from None
    except _TooDeep:
        raise DataError(
            f"{origin} names JSON key {json_key!r}, but the secret's JSON nests too deeply",
            hint="flatten the secret's JSON",
        ) from None
    except _NotJson:
        raise DataError(
            f"{origin} names JSON key {json_key!r}, but the secret is not valid JSON",
            hint="store a JSON object, or drop the JSON key from the reference",
        ) from None
    if not isinstance(parsed, dict):
        raise DataError(
            f"{origin} names JSON key {json_key!r}, but the secret is not a JSON object",
            hint="store a JSON object, or drop the JSON key from the reference",
        )
    if json_key not in parsed:
        raise NotFoundError(
            f"{origin}: the secret has no JSON key {json_key!r}",
            hint="check the key's spelling (JSON keys are case-sensitive)",
        )
    return _scalar(parsed[json_key], origin)
