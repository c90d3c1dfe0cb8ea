"""Shared set-up for the tests of ``demon/``: every tensor here is tiny, so run torch on one thread.

With more threads the intra-op pool only spins against whatever else shares the machine, which made
the digits test up to 20× slower on a busy two-core box.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
