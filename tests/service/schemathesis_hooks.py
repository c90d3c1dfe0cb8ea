"""Schemathesis hooks of ``test_schemathesis.py`` (loaded by ``SCHEMATHESIS_HOOKS``): the stateful
phase submits studies the server accepts, so its links reach real studies.

A spec is valid only under rules across fields that no schema states (a grid needs learning rates and
β values, the trial count has a limit, each workload its own parameters), so the fuzzer almost never
generated one: 0 of the inferred links were followed. Here, in the stateful phase and for positive
data only, the submitted body becomes a small valid spec that keeps what the fuzzer drew where it is
valid (the name, the seed count, the arms); every other phase, and negative data, is left as drawn.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from studies.spec import EXAMPLE
from studies.vocab import ARMS

SUBMIT = "POST /api/v1/studies"


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """A valid study spec for the stateful phase's positive submissions."""
    operation = context.operation
    meta = case.meta
    if operation is None or operation.label != SUBMIT or meta is None:
        return case
    if meta.phase.name != "stateful" or meta.generation.mode.is_negative:
        return case
    if any(where == "body" and info.mode.is_negative for where, info in meta.components.items()):
        return case  # a negative body must stay what the fuzzer drew, and be refused
    case.body = valid_spec(case.body)
    return case


def valid_spec(drawn: Any) -> dict[str, Any]:
    """``EXAMPLE`` with the drawn name, seed count (1-3) and arms where the fuzzer drew valid ones."""
    spec = dict(EXAMPLE)
    if not isinstance(drawn, dict):
        return spec
    name = drawn.get("name")
    if isinstance(name, str) and 1 <= len(name) <= 200 and "\x00" not in name:
        spec["name"] = name
    seeds = drawn.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool) and 1 <= seeds <= 3:
        spec["seeds"] = seeds
    arms = drawn.get("arms")
    if isinstance(arms, list):
        chosen = list(dict.fromkeys(a for a in arms if isinstance(a, str) and a in ARMS))
        if chosen:
            spec["arms"] = chosen
    return spec


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but one false alarm: a "negative" submission whose body, as sent, is a
    valid spec. Schemathesis' semantic overlay fills fields with values the API returned before (a
    study's name), which can undo the one mutation that made the body invalid; the server rightly
    accepts what is then a valid spec. Whether it is valid is decided by the spec's own model."""
    from schemathesis.core.failures import AcceptedNegativeData

    if not isinstance(failure, AcceptedNegativeData) or case.operation.label != SUBMIT:
        return True
    if any(where != "body" and info.mode.is_negative for where, info in case.meta.components.items()):
        return True
    from pydantic import ValidationError

    from studies.spec import StudySpec

    try:
        StudySpec.model_validate(case.body)
    except ValidationError:
        return True  # really invalid, and accepted: a real failure
    return False
