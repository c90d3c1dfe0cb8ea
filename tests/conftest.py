"""Suite-wide: the tests marked ``slow`` are collected first.

``make test`` spreads the suite over the cores (pytest-xdist), a file to a worker, in collection
order (``--dist loadfile --no-loadscope-reorder``). A long test left to the end of the queue keeps
one worker busy while the others have nothing left; started first, the long ones overlap the many
short ones and the workers finish together.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order otherwise
