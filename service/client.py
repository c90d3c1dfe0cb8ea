"""A typed Python client for the demonlab HTTP API (httpx), covering every endpoint.

    >>> client = DemonlabClient("http://127.0.0.1:8000")          # doctest: +SKIP
    >>> created = client.submit(spec_dict)                         # doctest: +SKIP
    >>> client.wait(created.id).status                             # doctest: +SKIP
    'completed'

Errors come back as ``ApiError`` (``service.errors``) with the HTTP status, the message and the field
at fault; no answer at all (refused, timed out) is its subclass ``ServiceUnreachable``, never a raw
``httpx`` error.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from studies.vocab import FINISHED_STUDY_STATUSES

from .errors import ApiError, ServiceUnreachable
from .schemas import (
    GridPublic,
    RobustnessPublic,
    SensitivityPublic,
    StudiesPublic,
    StudyCreated,
    StudyPublic,
    TrialsPublic,
)

if TYPE_CHECKING:  # the atlas models cost every CLI command ~40 ms to import; the atlas calls import them
    from studies.atlas.models import AtlasResult

FINISHED: tuple[str, ...] = tuple(FINISHED_STUDY_STATUSES)


__all__ = ["FINISHED", "ApiError", "DemonlabClient", "ServiceUnreachable"]


@dataclass(frozen=True)
class StudyEvent:
    """One server-sent event of a study: ``event`` (progress, trial, status, end), its ``id`` (set on
    trial events and the first progress event: a resume point) and its JSON ``data``."""

    event: str
    id: str | None
    data: dict[str, Any]


class DemonlabClient:
    """One connection to a demonlab service (``base_url`` without ``/api/v1``)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> DemonlabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(str(self._http.base_url).rstrip("/"), exc) from exc
        if response.status_code >= 400:
            self._raise(response)
        return response

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            raise ApiError(response.status_code, response.text) from None
        detail = str(body.get("detail"))
        more = [e for e in (body.get("errors") or [])[1:] if isinstance(e, dict)]  # the detail names the first
        if more:
            detail += "; " + "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in more)
        raise ApiError(response.status_code, detail, body.get("field"))

    @staticmethod
    def _params(**params: Any) -> dict[str, Any]:
        return {k: v for k, v in params.items() if v is not None}

    # studies
    def submit(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> StudyCreated:
        """Submit a spec; returns the id and URL (202)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._request("POST", "/api/v1/studies", json=spec, headers=headers)
        return StudyCreated.model_validate(response.json())

    def list_studies(
        self,
        *,
        status: str | None = None,
        workload: str | None = None,
        name: str | None = None,
        offset: int = 0,
        limit: int = 50,
        name_contains: str | None = None,
    ) -> StudiesPublic:
        """A page of studies (``name``: exactly that name; ``name_contains``: a part of it, any case)."""
        params = self._params(
            status=status, workload=workload, name=name, offset=offset, limit=limit, name_contains=name_contains
        )
        return StudiesPublic.model_validate(self._request("GET", "/api/v1/studies", params=params).json())

    def get_study(self, study_id: str) -> StudyPublic:
        """One study's status and progress."""
        return StudyPublic.model_validate(self._request("GET", f"/api/v1/studies/{study_id}").json())

    def cancel(self, study_id: str) -> StudyPublic:
        """Cancel a study."""
        return StudyPublic.model_validate(self._request("POST", f"/api/v1/studies/{study_id}/cancel").json())

    def delete(self, study_id: str) -> None:
        """Delete a study (refused while it runs)."""
        self._request("DELETE", f"/api/v1/studies/{study_id}")

    def events(
        self,
        study_id: str,
        *,
        last_event_id: str | None = None,
        reconnects: int = 5,
        timeout: float | None = None,
    ) -> Iterator[StudyEvent]:
        """The study's server-sent events until the server closes the stream (the study finished).

        A dropped connection is resumed with ``Last-Event-ID`` (up to ``reconnects`` times in a row),
        so no recorded trial is missed or repeated. ``timeout`` bounds the whole stream: past it,
        ``TimeoutError``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            read = self._http.timeout.read
            if deadline is not None:
                read = max(0.01, min(read or math.inf, deadline - time.monotonic()))
            limits = httpx.Timeout(self._http.timeout.connect, read=read)
            path = f"/api/v1/studies/{study_id}/events"
            try:
                with self._http.stream("GET", path, headers=headers, timeout=limits) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._raise(response)
                    for event, event_id, data in parse_stream(response.iter_lines()):
                        failures = 0
                        if event_id is not None:
                            last_event_id = event_id
                        yield StudyEvent(event, event_id, json.loads(data))
                        if event == "end":
                            return
                        if deadline is not None and time.monotonic() > deadline:
                            raise TimeoutError(f"study {study_id}: no end of its events after {timeout}s")
                return
            except httpx.ReadTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"study {study_id}: no end of its events after {timeout}s") from None
                failures += 1
                if failures > reconnects:
                    raise
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(2.0**failures / 4, 5.0))

    def wait(
        self,
        study_id: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[StudyPublic], None] | None = None,
    ) -> StudyPublic:
        """Follow the study's event stream until it is finished; ``on_progress`` sees every progress
        event (the first on connect). Past ``timeout`` seconds, ``TimeoutError``."""
        try:
            for event in self.events(study_id, timeout=timeout):
                if event.event == "progress":
                    study = StudyPublic.model_validate(event.data)
                    if on_progress is not None:
                        on_progress(study)
                    if study.status in FINISHED:
                        return study
        except TimeoutError:
            status = self.get_study(study_id).status
            raise TimeoutError(f"study {study_id} still {status} after {timeout}s") from None
        return self.get_study(study_id)  # the stream ended without a finished progress: deleted → 404

    # results
    def trials(
        self,
        study_id: str,
        *,
        arm: str | None = None,
        status: str | None = None,
        lr: float | None = None,
        beta_init: float | None = None,
        offset: int = 0,
        limit: int = 100,
        curves: bool = False,
    ) -> TrialsPublic:
        """A page of a study's trials."""
        params = self._params(
            arm=arm, status=status, lr=lr, beta_init=beta_init, offset=offset, limit=limit, curves=curves
        )
        response = self._request("GET", f"/api/v1/studies/{study_id}/trials", params=params)
        return TrialsPublic.model_validate(response.json())

    def grid(
        self,
        study_id: str,
        *,
        arm: str | None = None,
        metric: str | None = None,
        split: str = "test",
        stat: str = "median",
    ) -> GridPublic:
        """One arm's lr × β_init grid."""
        params = self._params(arm=arm, metric=metric, split=split, stat=stat)
        return GridPublic.model_validate(self._request("GET", f"/api/v1/studies/{study_id}/grid", params=params).json())

    def sensitivity(
        self, study_id: str, *, target: float | None = None, metric: str | None = None, split: str = "test"
    ) -> SensitivityPublic:
        """Each pair's verdict and the figures per arm and per pair (the typed report)."""
        params = self._params(target=target, metric=metric, split=split)
        body = self._request("GET", f"/api/v1/studies/{study_id}/sensitivity", params=params).json()
        return SensitivityPublic.model_validate(body)

    def heatmap(
        self,
        study_id: str,
        *,
        fmt: str = "png",
        metric: str | None = None,
        split: str = "test",
        arms: list[str] | None = None,
    ) -> bytes:
        """The heatmap image (PNG or SVG bytes)."""
        params = self._params(metric=metric, split=split, arms=",".join(arms) if arms else None)
        return self._request("GET", f"/api/v1/studies/{study_id}/heatmap.{fmt}", params=params).content

    def export(self, study_id: str, *, fmt: str = "csv") -> bytes:
        """Every trial as CSV or Parquet bytes."""
        return self._request("GET", f"/api/v1/studies/{study_id}/export.{fmt}").content

    def robustness(self, workload: str, *, arm: str | None = None, epochs: int | None = None) -> RobustnessPublic:
        """The cross-study robustness query (typed)."""
        params = self._params(workload=workload, arm=arm, epochs=epochs)
        return RobustnessPublic.model_validate(self._request("GET", "/api/v1/robustness", params=params).json())

    # atlases
    def create_atlas(self, suite: str, *, seeds: int, workloads: list[str] | None = None) -> AtlasResult:
        """Submit an atlas's missing studies (202); where it stands."""
        body = {"suite": suite, "seeds": seeds, "workloads": workloads}
        from studies.atlas.models import AtlasResult

        return AtlasResult.model_validate(self._request("POST", "/api/v1/atlases", json=body).json())

    def atlas(self, key: str) -> AtlasResult:
        """An atlas's progress, verdicts and pooled answer."""
        from studies.atlas.models import AtlasResult

        return AtlasResult.model_validate(self._request("GET", f"/api/v1/atlases/{key}").json())

    def atlas_report(self, key: str) -> str:
        """The atlas's self-contained HTML report."""
        return self._request("GET", f"/api/v1/atlases/{key}/report.html").text

    def atlas_figure(self, key: str, name: str, *, fmt: str = "png") -> bytes:
        """One figure of the atlas's report (PNG or SVG bytes)."""
        return self._request("GET", f"/api/v1/atlases/{key}/figures/{name}.{fmt}").content

    # health
    def healthz(self) -> dict[str, Any]:
        """Liveness."""
        body: dict[str, Any] = self._request("GET", "/healthz").json()
        return body

    def readyz(self) -> dict[str, Any]:
        """Readiness (raises ``ApiError`` 503 when not ready)."""
        body: dict[str, Any] = self._request("GET", "/readyz").json()
        return body


def parse_stream(lines: Iterator[str]) -> Iterator[tuple[str, str | None, str]]:
    """(event, id, data) of each message in SSE text lines (comments and ``retry`` skipped)."""
    event, event_id, data = "message", None, list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, event_id, "\n".join(data)
            event, event_id, data = "message", None, list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
