"""The readers of the settings' values: the narrow grammar ``SETTINGS`` uses, one per kind.

Each reader takes a variable's text and returns its value, or raises ``Invalid`` saying, in
words for the one error line, why it cannot. The prefix, namespace and file-mapping checks are
also used on their own (``prefix_problem``, ``namespace_problem``, ``parse_file_mapping``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from secrets_agent.core import aws_names
from secrets_agent.core.protected import VALID_NAME, is_protected

#: One entry of SECRETS_AGENT_ALLOW: a variable name, where ``*`` matches any run.
ALLOW_ENTRY = re.compile(r"[A-Za-z0-9_*]+\Z")
#: A CloudWatch namespace: 1-255 of these characters, and never AWS's own ``AWS/``.
METRICS_NAMESPACE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}\Z")
#: One entry of SECRETS_AGENT_REQUIRE: a variable name.
_NUMBER = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?\Z")
_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


class Invalid(ValueError):
    """Why a value cannot be read, in words for the one error line."""


_PREFIXES = {
    "parameter_store_prefix": (
        aws_names.SSM_NAME_CHARS,
        aws_names.SSM_NAME_PUNCTUATION,
        aws_names.SSM_NAME_MAX,
        "an SSM parameter name",
    ),
    "secrets_manager_prefix": (
        aws_names.SM_NAME_CHARS,
        aws_names.SM_NAME_PUNCTUATION,
        aws_names.SM_NAME_MAX,
        "a secret name",
    ),
}


def prefix_problem(value: str, field: str) -> str | None:
    """Why a set, non-empty prefix variable is invalid, or None.

    A prefix variable holds one prefix or a comma-separated list of them (layers; AWS names
    cannot hold a comma). Each entry follows every rule of a single prefix; an empty entry or
    one listed twice is a mistake too.
    """
    if "," not in value:
        return _one_prefix_problem(value, field)
    from secrets_agent.core.layers import prefix_entries, same_prefix_key

    entries = prefix_entries(value)
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if not entry.strip():
            return (
                f"entry {number} of its {len(entries)} comma-separated prefixes is empty; "
                "list each prefix once, separated by single commas"
            )
        problem = _one_prefix_problem(entry, field)
        if problem is not None:
            return f"prefix {entry.strip()[:100]!r} (entry {number}): {problem}"
        key = same_prefix_key(entry.strip())
        if key in seen:
            return f"prefix {entry.strip()[:100]!r} is listed twice; list each prefix once"
        seen.add(key)
    return None


def normalize_prefixes(value: str) -> str:
    """The prefix variable as it is kept: each entry stripped, joined by single commas."""
    from secrets_agent.core.layers import prefix_entries

    return ",".join(prefix_entries(value))


def _one_prefix_problem(value: str, field: str) -> str | None:
    """Why one prefix is invalid, or None.

    Whitespace around a prefix is ignored; a prefix of whitespace alone (a space, a tab, a
    no-break space) is a mistake, not "unset": only the empty string is unset.
    """
    chars, punctuation, limit, what = _PREFIXES[field]
    stripped = value.strip()
    if not stripped:
        return (
            f"it holds only whitespace ({value[:20]!r}); set a prefix, or leave it empty to "
            "load nothing"
        )
    if not re.fullmatch(f"[{chars}]+", stripped):
        return (
            f"a prefix holds only letters, digits and {punctuation} as AWS names do "
            "(no spaces, ':' or wildcards such as '*')"
        )
    # The shortest name under it: the prefix, its separator unless it ends with one, a character.
    if len(stripped) + (1 if stripped.endswith(aws_names.SEPARATORS) else 2) > limit:
        return (
            f"it is {len(stripped)} characters long, so no name fits under it ({what} holds "
            f"at most {limit} characters, the prefix included)"
        )
    if field == "parameter_store_prefix" and not stripped.strip("/"):
        return (
            f"{stripped!r} is every path parameter of the account and Region (path mode is "
            "recursive), so every team's secrets would be loaded and granted; name the app's "
            "own path, such as /myapp/prod"
        )
    if field == "parameter_store_prefix":
        levels = len([part for part in stripped.split("/") if part])
        if levels > aws_names.SSM_MAX_LEVELS:
            return (
                f"it has {levels} levels ('/'-separated parts), but an SSM parameter name has "
                f"at most {aws_names.SSM_MAX_LEVELS}"
            )
    return None


def prefix_reader(field: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        problem = prefix_problem(value, field)
        if problem is not None:
            raise Invalid(problem)
        return normalize_prefixes(value)

    return read


def read_bool(value: str) -> bool:
    try:
        return _BOOLS[value.strip().lower()]
    except KeyError:
        raise Invalid("use true or false (also 1/0, yes/no, on/off)") from None


def number_reader(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    shown = f"more than {low:g}" if low_open else f"{low:g}"

    def read(value: str) -> float:
        if not _NUMBER.match(value.strip()):
            raise Invalid(f"give a number of seconds such as 30 or 0.5, from {shown} to {high:g}")
        number = float(value)
        if number > high or number < low or (low_open and number == low):
            raise Invalid(f"give a number of seconds from {shown} to {high:g}")
        return number

    return read


def choice_reader(*choices: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        word = value.strip().lower()
        if word not in choices:
            raise Invalid("use one of " + ", ".join(choices))
        return word

    return read


def read_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def read_key_arns(value: str) -> tuple[str, ...]:
    arns = read_list(value)
    for arn in arns:
        if not aws_names.KMS_KEY_ONLY_ARN.match(arn):
            raise Invalid("each entry must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
    return arns


def namespace_problem(value: str) -> str | None:
    """Why a CloudWatch namespace is invalid, or None."""
    if not METRICS_NAMESPACE.match(value) or not value.strip():
        return (
            "a CloudWatch namespace holds 1-255 letters, digits, spaces and . - _ / # : "
            "(SecretsAgent, kptboard/secrets)"
        )
    if value.startswith("AWS/"):
        return "namespaces starting with AWS/ are AWS's own"
    return None


def read_namespace(value: str) -> str:
    problem = namespace_problem(value)
    if problem is not None:
        raise Invalid(problem)
    return value


def read_allow(value: str) -> tuple[str, ...]:
    entries = read_list(value)
    if not entries or not all(ALLOW_ENTRY.match(entry) for entry in entries):
        raise Invalid(
            "give comma-separated variable names, where * matches any run of characters "
            "(DATABASE_URL,SECRET_KEY_BASE,RAILS_*)"
        )
    return entries


def read_require(value: str) -> tuple[str, ...]:
    entries = read_list(value)
    if not entries or not all(VALID_NAME.match(entry) for entry in entries):
        raise Invalid(
            "give comma-separated variable names, each letters, digits and _ not starting "
            "with a digit (SECRET_KEY_BASE,DATABASE_URL)"
        )
    return tuple(dict.fromkeys(entries))


def read_ecs_name(value: str) -> str:
    if not aws_names.ECS_NAME.match(value.strip()):
        raise Invalid("an ECS name holds 1-255 letters, digits, hyphens and underscores")
    return value.strip()


def parse_file_mapping(value: str) -> tuple[tuple[str, str], ...]:
    """``"A=path,B=path"`` -> ``(("A", "path"), ("B", "path"))``; ValueError saying why not."""
    entries: list[tuple[str, str]] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, path = entry.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not path:
            raise ValueError(
                f"entry {entry[:80]!r} is not VARIABLE=PATH (comma-separated entries, such as "
                "RAILS_MASTER_KEY=config/credentials/production.key)"
            )
        if not VALID_NAME.match(name):
            raise ValueError(f"{name[:80]!r} in entry {entry[:80]!r} is not a variable name")
        if is_protected(name):
            raise ValueError(
                f"{name} is a protected variable, which the agent never moves to a file"
            )
        if any(name == seen for seen, _ in entries):
            raise ValueError(f"variable {name} is given twice")
        if any(path == seen for _, seen in entries):
            raise ValueError(f"path {path[:200]!r} is given twice")
        entries.append((name, path))
    if not entries:
        raise ValueError("it holds no VARIABLE=PATH entry")
    return tuple(entries)


def read_files(value: str) -> tuple[tuple[str, str], ...]:
    try:
        return parse_file_mapping(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def read_listen(value: str) -> tuple[str, ...]:
    from secrets_agent.core.addresses import parse_addresses

    try:
        return tuple(address.text for address in parse_addresses(value))
    except ValueError as exc:
        raise Invalid(str(exc)) from None
