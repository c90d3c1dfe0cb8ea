"""A submission to the API wakes the scheduler of its own process (``demonlab serve``, ``make run``):
the study is launched at once, not at the scheduler's next poll."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cluster_helpers import wait_until
from test_end_to_end import Drivers, finished

from service.client import DemonlabClient

pytestmark = pytest.mark.slow
POLL_SECONDS = 120.0  # the scheduler's poll: far longer than the test waits for a launch


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_submission_wakes_the_scheduler_of_its_process(live_server: Any, smoke_spec: dict[str, Any]) -> None:
    drivers = Drivers()
    try:
        with (
            live_server(run_scheduler=True, scheduler_poll_seconds=POLL_SECONDS, warm_drivers=False) as url,
            DemonlabClient(url, timeout=30) as client,
        ):
            # The first study runs to its end, so the scheduler's start-up ticks are long past: it waits
            # out its poll when the second is submitted.
            first = client.submit(smoke_spec | {"name": "first"}).id
            done = wait_until(lambda: s if finished(s := client.get_study(first)) else None, timeout=120)
            drivers.note(done.job_id)
            assert done.status == "completed", done.error

            submitted = time.monotonic()
            second = client.submit(smoke_spec | {"name": "second"}).id
            launched = wait_until(lambda: client.get_study(second).job_id, timeout=POLL_SECONDS / 4, interval=0.05)
            drivers.note(launched)
            assert time.monotonic() - submitted < POLL_SECONDS / 4
            wait_until(lambda: finished(client.get_study(second)), timeout=120)
    finally:
        drivers.reap()
