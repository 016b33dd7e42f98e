"""Every test of tests/system/ carries the ``system`` marker, so ``-m 'not system'`` leaves out
the image, Rails, the benchmark smoke run and the memory figures."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/system/" in item.nodeid:
            item.add_marker(pytest.mark.system)
