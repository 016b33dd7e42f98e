"""The check process's request and answer (``secrets_agent.supervise.isolated`` sends the one and
reads the other; ``secrets_agent.supervise.check_process`` the reverse), validated strictly.

Redeploy mode's ECS state lives in the supervisor as plain data: the request's ``redeploy``
carries the service's identity, when the command's values were resolved and the names the
command has; the answer's ``redeploy`` carries the pacing (and, from the first resolution,
the service found).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secrets_agent.core.settings import Settings
    from secrets_agent.output.metrics import Emf

Fingerprint = dict[str, tuple[str | None, str]]


# -- the request's and the answer's format ------------------------------------------------------
# JSON of str, int, float, bool, None, lists and objects: it cannot carry code, unlike pickle (a
# process of the same uid that got hold of a pipe could otherwise run code in the supervisor or
# in a check process). ASCII only: every str, a lone surrogate from a non-UTF-8 inherited
# variable too, round-trips.
def encode_request(
    *,
    kind: str,
    settings: Settings,
    environ: Mapping[str, str],
    fingerprint: Fingerprint | None,
    level: str,
    fmt: str,
    emf: Emf | None,
    redeploy: Mapping[str, Any] | None = None,
) -> bytes:
    """The request to a check process as bytes (``secrets_agent.supervise.check_process`` decodes
    it)."""
    import dataclasses
    import json

    request = {
        "kind": kind,
        "settings": dataclasses.asdict(settings),
        "environ": dict(environ),
        "fingerprint": fingerprint,
        "level": level,
        "fmt": fmt,
        "emf": None if emf is None else [emf.namespace, emf.dimensions],
        "redeploy": None if redeploy is None else dict(redeploy),
    }
    return json.dumps(request, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def decode_request(data: bytes) -> dict[str, Any]:
    """The request as the check process uses it: a ``Settings``, an ``Emf`` or None, the
    fingerprint's entries as tuples again (it is compared with new ones)."""
    import json

    from secrets_agent.core.settings import Settings
    from secrets_agent.output.metrics import Emf

    raw = json.loads(data.decode("ascii"))

    def tuples(value: Any) -> Any:
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    settings = Settings(**{k: tuples(v) for k, v in raw["settings"].items()})
    emf = raw["emf"]
    fingerprint = raw["fingerprint"]
    return {
        "kind": str(raw["kind"]),
        "settings": settings,
        "environ": {str(k): str(v) for k, v in raw["environ"].items()},
        "fingerprint": None if fingerprint is None else _fingerprint(fingerprint),
        "level": str(raw["level"]),
        "fmt": str(raw["fmt"]),
        "emf": None if emf is None else Emf(namespace=emf[0], dimensions=tuples(emf[1])),
        "redeploy": _redeploy_request(raw.get("redeploy")),
    }


def encode_answer(answer: Mapping[str, Any]) -> bytes:
    """The check process's answer as bytes (``secrets_agent.supervise.check_process``)."""
    import json

    return json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def decode_answer(data: bytes) -> dict[str, Any]:
    """Parse and check an answer; ``ValueError`` for anything but the few shapes it has:
    ``{"error": [code, line, kind or null, event or null]}`` (the event: the JSON error
    event's fields, strings, numbers, booleans or null), ``{"env": null}`` (nothing changed), or
    ``{"env": {str: str},
    "fingerprint": {name: [version or null, digest]}, "changes": [name, ...]}`` (``changes``
    absent from a first resolution's answer). Redeploy mode: ``"redeploy"`` (see
    :func:`_redeploy_answer`), and ``{"env": null}`` with the fingerprint and changes it acted
    on."""
    import json

    raw = json.loads(data.decode("ascii"))
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    if "error" in raw:
        return _error_answer(raw["error"])
    env = raw.get("env")
    result: dict[str, Any] = {"env": None}
    if env is not None:
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("bad env")
        result = {"env": env, "fingerprint": _fingerprint(raw.get("fingerprint"))}
    elif "fingerprint" in raw:
        result["fingerprint"] = _fingerprint(raw["fingerprint"])
    if "redeploy" in raw:
        result["redeploy"] = _redeploy_answer(raw["redeploy"])
    if "changes" in raw:
        changes = raw["changes"]
        if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
            raise ValueError("bad changes")
        result["changes"] = changes
    return result


def _error_answer(error: object) -> dict[str, Any]:
    """An ``{"error": [code, line, kind or null, event or null]}`` answer's checked value."""
    if (
        not isinstance(error, list)
        or len(error) not in (2, 4)
        or type(error[0]) is not int
        or not isinstance(error[1], str)
    ):
        raise ValueError("bad error")
    kind, event = (error[2], error[3]) if len(error) == 4 else (None, None)
    if kind is not None and not isinstance(kind, str):
        raise ValueError("bad error kind")
    if event is not None and not (
        isinstance(event, dict)
        and all(
            isinstance(k, str) and (v is None or type(v) in (str, int, float, bool))
            for k, v in event.items()
        )
    ):
        raise ValueError("bad error event")
    return {"error": (error[0], error[1], kind, event)}


def _fingerprint(raw: object) -> Fingerprint:
    if not isinstance(raw, dict):
        raise ValueError("bad fingerprint")
    out: Fingerprint = {}
    for name, entry in raw.items():
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not (entry[0] is None or isinstance(entry[0], str))
            or not isinstance(entry[1], str)
        ):
            raise ValueError("bad fingerprint entry")
        out[name] = (entry[0], entry[1])
    return out


def _service(raw: object) -> list[str | None]:
    """An ECS service's identity: [cluster, name, region or null, task ARN or null, found by]."""
    if (
        not isinstance(raw, list)
        or len(raw) != 5
        or not all(isinstance(raw[i], str) for i in (0, 1, 4))
        or not all(raw[i] is None or isinstance(raw[i], str) for i in (2, 3))
    ):
        raise ValueError("bad service")
    return list(raw)


def _redeploy_request(raw: object) -> dict[str, Any] | None:
    """``{"service": [...], "resolved_at": seconds, "names": [name, ...]}`` or null."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"service", "resolved_at", "names"}:
        raise ValueError("bad redeploy request")
    names, resolved_at = raw["names"], raw["resolved_at"]
    if type(resolved_at) not in (int, float) or not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise ValueError("bad redeploy request")
    return {"service": _service(raw["service"]), "resolved_at": float(resolved_at), "names": names}


def _redeploy_answer(raw: object) -> dict[str, Any]:
    """``{"stretch": n}`` (a positive int), plus ``"service"`` from the first resolution."""
    if not isinstance(raw, dict) or not {"stretch"} <= set(raw) <= {"stretch", "service"}:
        raise ValueError("bad redeploy answer")
    stretch = raw["stretch"]
    if type(stretch) is not int or stretch < 1:
        raise ValueError("bad stretch")
    result: dict[str, Any] = {"stretch": stretch}
    if "service" in raw:
        result["service"] = _service(raw["service"])
    return result
