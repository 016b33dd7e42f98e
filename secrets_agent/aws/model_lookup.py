"""A cheaper "is this a known service?" for botocore's data loader.

Before loading a model (``service-2``, ``endpoint-rule-set-1``, ``paginators-1``), botocore's
``Loader.load_service_model`` checks ``service_name in list_available_services(type_name)``,
and that list is built by scanning every service directory botocore ships (about 420, with a
``listdir`` and a ``stat`` each), once per model type. Creating the agent's SSM client and its
paginator scanned three times: about 20 ms of CPU on a small container, 10% of a start.

``speed_up(session)`` makes the membership test look at the one service asked about (with the
loader's public ``list_api_versions``), on the session's own loader so that ``AWS_DATA_PATH``
and every search path still apply. Anything else (iterating, ``len``) falls back to botocore's
full scan, so the answer is the same list, only computed when it is really needed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, overload


class KnownServices(Sequence[str]):
    """``loader.list_available_services(type_name)``, with a lazy, per-name ``in``."""

    def __init__(self, loader: Any, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name
        self._names: list[str] | None = None

    def _all(self) -> list[str]:
        if self._names is None:
            self._names = list(
                type(self._loader).list_available_services(self._loader, self._type_name)
            )
        return self._names

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            return name in self._all()
        from botocore.exceptions import DataNotFoundError

        try:
            return bool(self._loader.list_api_versions(name, self._type_name))
        except DataNotFoundError:
            return False

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())


def speed_up(session: Any) -> None:
    """Install the per-name lookup on ``session``'s data loader (no I/O here)."""
    loader = session.get_component("data_loader")
    loader.list_available_services = functools.partial(KnownServices, loader)
