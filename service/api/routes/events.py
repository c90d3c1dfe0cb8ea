"""Server-sent events of one study: ``GET /api/v1/studies/{id}/events``.

What the dashboard, the Python client and ``demonlab submit --wait`` follow instead of polling:

- ``progress`` (data: the study as ``GET /studies/{id}`` shows it) on connect and whenever the
  counters or the status change, and once when the first trial starts running;
- ``trial`` (data: the trial as ``/trials`` shows it, without its curve) for each trial recorded
  (completed, diverged or failed) after the stream's start; its ``id`` is a cursor, so a client that
  reconnects with ``Last-Event-ID`` gets the trials it missed and no others;
- ``status`` (data: ``{"status", "previous", "error"}``) when the status changes;
- ``end`` (data: ``{"status"}``, ``"deleted"`` when the study went away) before the server closes
  the stream of a finished study;
- a comment line (``: heartbeat``) after ``events_heartbeat_seconds`` without an event, so proxies
  and clients see the connection alive.

The server polls the study row every ``events_poll_seconds`` (one primary-key read) and reads trials
only when the counters moved. A cursor is (``updated_at`` in µs, trial id): the driver of a study
records its trials one transaction after another, so their ``updated_at`` order is their commit order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from studies.vocab import TrialStatus

from ...db import dal
from ...db.engine import session_scope
from ...db.models import Study, Trial
from ...errors import InvalidInput, NotFound
from ...presenters import study_public, trial_public
from ..deps import EngineDep, SettingsDep
from ..responses import errors

router = APIRouter(prefix="/studies/{study_id}", tags=["events"])

RECORDED = (*(s for s in TrialStatus if s.is_done), TrialStatus.FAILED)  # a trial's ending, told once
BATCH = 500  # trials read per query; a stream catches up batch by batch
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# An event id as the schema states it (empty: none): µs within datetime's range (17 digits: up to the
# year 5138), a trial id within the databases' 64-bit integers (18 digits).
EVENT_ID = r"^(\d{1,17}\.\d{1,18})?$"


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a stream stands in a study's recorded trials: (updated_at in µs, trial id)."""

    micros: int
    trial_id: int

    def __str__(self) -> str:
        return f"{self.micros}.{self.trial_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``"<µs>.<id>"`` as sent in an event's ``id``; anything else is a 422 naming the header."""
        micros, _, trial_id = text.strip().partition(".")
        try:
            return cls(int(micros), int(trial_id))
        except ValueError:
            raise InvalidInput("Last-Event-ID", f"not an event id of this stream: {text[:40]!r}") from None

    @property
    def when(self) -> dt.datetime:
        return EPOCH + dt.timedelta(microseconds=self.micros)


def _micros(when: dt.datetime) -> int:
    return (when - EPOCH) // dt.timedelta(microseconds=1)


def format_event(event: str, data: Any, event_id: str | None = None) -> str:
    """One SSE message (JSON data on one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def _study(engine: Engine, study_id: str) -> Study | None:
    with session_scope(engine, read_only=True) as session:
        return session.get(Study, study_id)


def _latest_cursor(engine: Engine, study_id: str) -> Cursor:
    """The cursor of the study's newest recorded trial (the start of a fresh stream)."""
    with session_scope(engine, read_only=True) as session:
        row = session.execute(
            select(Trial.updated_at, Trial.id)
            .where(Trial.study_id == study_id, Trial.status.in_(RECORDED))
            .order_by(Trial.updated_at.desc(), Trial.id.desc())
            .limit(1)
        ).first()
    return Cursor(_micros(row[0]), row[1]) if row else Cursor(0, 0)


def _trials_after(engine: Engine, study_id: str, cursor: Cursor) -> list[tuple[Cursor, dict[str, Any]]]:
    """Up to ``BATCH`` recorded trials after ``cursor``, oldest first, each with its own cursor."""
    when = cursor.when
    with session_scope(engine, read_only=True) as session:
        rows = session.scalars(
            select(Trial)
            .where(
                Trial.study_id == study_id,
                Trial.status.in_(RECORDED),
                Trial.updated_at >= when,  # a range on the (study_id, updated_at) index
                or_(Trial.updated_at > when, Trial.id > cursor.trial_id),
            )
            .order_by(Trial.updated_at, Trial.id)
            .limit(BATCH)
        ).all()
        return [
            (Cursor(_micros(row.updated_at), row.id), trial_public(dal.trial_record(row)).model_dump(mode="json"))
            for row in rows
        ]


def _counters(study: Study) -> tuple[Any, ...]:
    return (study.status, study.trials_done, study.trials_failed, study.trials_diverged, study.trials_total)


def _any_trial_started(engine: Engine, study_id: str) -> bool:
    """Whether a trial of the study is running (or ran): the moment a follower stops saying "starting"."""
    with session_scope(engine, read_only=True) as session:
        running = select(Trial.id).where(Trial.study_id == study_id, Trial.status == "running").limit(1)
        return session.scalar(running) is not None


async def _started(engine: Engine, study: Study, already: bool) -> bool:
    """``already``, or whether the study's first trial has started (asked only until it has)."""
    if already or study.trials_done or study.trials_failed:
        return True
    if study.status.value != "running":
        return False
    return await run_in_threadpool(_any_trial_started, engine, study.id)


async def study_events(
    engine: Engine, study_id: str, cursor: Cursor | None, *, poll_seconds: float, heartbeat_seconds: float
) -> AsyncIterator[str]:
    """The stream's messages until the study is finished (or deleted)."""
    study = await run_in_threadpool(_study, engine, study_id)
    if study is None:
        yield format_event("end", {"status": "deleted"})
        return
    if cursor is None:
        cursor = await run_in_threadpool(_latest_cursor, engine, study_id)
    yield f"retry: {int(max(poll_seconds, 1.0) * 1000)}\n\n"
    # The first progress event carries the cursor, so a client that reconnects resumes from here.
    yield format_event("progress", study_public(study).model_dump(mode="json"), str(cursor))
    seen: tuple[Any, ...] | None = None
    started = False  # a progress event also marks the first trial's start ("starting Ray…" ends there)
    last_sent = time.monotonic()
    while True:
        started = await _started(engine, study, started)
        counters = (*_counters(study), started)
        if seen is None or counters != seen:
            for trial_cursor, trial in await run_in_threadpool(_trials_after, engine, study_id, cursor):
                cursor = trial_cursor
                yield format_event("trial", trial, str(cursor))
            if seen is not None:
                if study.status != seen[0]:
                    change = {"status": study.status.value, "previous": seen[0].value, "error": study.error}
                    yield format_event("status", change)
                yield format_event("progress", study_public(study).model_dump(mode="json"))
            seen = counters
            last_sent = time.monotonic()
            if study.status.is_finished:
                if await run_in_threadpool(_trials_after, engine, study_id, cursor):
                    seen = None  # late arrivals: send them before the end
                    continue
                yield format_event("end", {"status": study.status.value})
                return
        elif time.monotonic() - last_sent >= heartbeat_seconds:
            yield ": heartbeat\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(poll_seconds)
        latest = await run_in_threadpool(_study, engine, study_id)
        if latest is None:
            yield format_event("end", {"status": "deleted"})
            return
        study = latest


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "a stream of server-sent events"},
        **errors(404),
    },
)
async def get_events(
    study_id: str,
    engine: EngineDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=EVENT_ID,
            description="the id of the last event received (`<µs>.<trial id>`): resume after it",
        ),
    ] = "",
) -> StreamingResponse:
    """Progress, each recorded trial and status changes of a study, live, until it finishes.

    Reconnecting with ``Last-Event-ID`` resumes after the last trial received."""
    cursor = Cursor.parse(last_event_id) if last_event_id else None
    if await run_in_threadpool(_study, engine, study_id) is None:
        raise NotFound("study", study_id)
    stream = study_events(
        engine,
        study_id,
        cursor,
        poll_seconds=settings.events_poll_seconds,
        heartbeat_seconds=settings.events_heartbeat_seconds,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
