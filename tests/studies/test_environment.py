"""``studies.environment``: what a study records about the software and machines it ran on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from studies.environment import ROOT, cpu_model, git_commit, hardware, nodes_used, software


def test_software_names_every_version_from_the_installed_packages() -> None:
    found = software()
    assert found["torch"] == torch.__version__
    assert found["demonlab"]
    assert found["ray"]
    assert found["optuna"]
    assert found["python"].startswith("3.")


def test_git_commit_is_the_checkout_head_or_none_outside_a_checkout(tmp_path: Path) -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_commit() in (head.strip(), head.strip() + "+dirty")
    assert git_commit(tmp_path) is None


def test_hardware_of_this_machine() -> None:
    here = hardware("cpu")
    assert here["cpu"] == cpu_model() != ""
    assert here["gpu"] is None
    assert here["cpus"] >= 1


def test_nodes_used_groups_trials_by_node() -> None:
    a = {"hardware": {"cpu": "Xeon", "gpu": "H200"}}
    b = {"hardware": {"cpu": "EPYC", "gpu": None}}
    nodes = nodes_used(
        [("n2", "cpu", b), ("n1", "cuda:0", a), ("n1", "cuda:1", a), ("n1", "cuda:0", a), ("n3", "cpu", None)]
    )
    assert nodes == [
        {"node": "n1", "cpu": "Xeon", "gpus": ["H200"], "devices": ["cuda:0", "cuda:1"], "trials": 3},
        {"node": "n2", "cpu": "EPYC", "gpus": [], "devices": ["cpu"], "trials": 1},
        {"node": "n3", "cpu": None, "gpus": [], "devices": ["cpu"], "trials": 1},
    ]
