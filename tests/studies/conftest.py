"""Shared set-up for the tests of ``studies/``: one local Ray per test session, small grids.

Ray takes about 3 s to start and 1.3 s to stop, so it starts once, on the first test that asks for
``ray_session``, and stops when the session ends. Its temp dir is a short path under /tmp: Ray's
Unix socket paths must stay under ~107 bytes, which pytest's ``tmp_path`` would exceed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studies.executors import ensure_ray, shutdown_ray
from studies.spec import StudySpec

SMOKE_SPEC = {
    "name": "engine-test",
    "workload": "synthetic",
    "arms": ["demon_sgdm", "sgdm_step"],
    "lr": [0.03, 0.3],
    "beta_init": [0.8, 0.9],
    "seeds": 2,
    "epochs": 2,
}


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray on 2 CPUs for the whole session (started lazily, shut down at the end)."""
    data_dir = Path(tempfile.mkdtemp(prefix="dl-ray-"))
    ensure_ray(data_dir=data_dir, num_cpus=2)
    yield
    shutdown_ray()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def smoke_spec_data() -> dict[str, Any]:
    """2 arms × 2 lr × 2 β_init × 2 seeds = 16 trials of 2 epochs on ``synthetic`` (milliseconds each)."""
    return dict(SMOKE_SPEC)


@pytest.fixture
def smoke_spec(smoke_spec_data: dict[str, Any]) -> StudySpec:
    """``smoke_spec_data`` as a validated spec."""
    return StudySpec.model_validate(smoke_spec_data)
