"""``make run``: the whole loop on the embedded default (SQLite, local Ray).

Start the service (API + scheduler) in this process, submit the digits example over HTTP, follow
its progress, print each pair's verdict first, then the sensitivity summary and where the heatmaps
are, and keep serving until Ctrl-C so the API, its docs and the heatmaps can be opened in a browser.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from studies.vocab import StudyStatus

from .errors import DemonlabError

EXAMPLE = Path(__file__).resolve().parent.parent / "studies" / "examples" / "digits.yaml"


class PortBusy(ValueError):
    """The port asked for is taken: ``make run`` says so instead of serving somewhere else."""


class ServiceDidNotStart(DemonlabError):
    """The API server stopped while starting (its database unreachable, say): said in one line."""


def pick_port(requested: int | None, default: int) -> tuple[socket.socket, str | None]:
    """A listening socket to serve on, and a note when its port is not the default one.

    A port asked for (``--port`` or ``DEMONLAB_PORT``) is used or refused (``PortBusy``), never silently
    replaced (0 takes a free one); when none was asked for and the default is taken, a free port is
    taken and the note says which. The socket is bound here and served as it is, so no other process
    can take the port in between."""
    from .api.server import listening_socket

    if requested is not None:
        try:
            return listening_socket("127.0.0.1", requested), None
        except OSError as error:
            raise PortBusy(
                f"port {requested} is already in use on 127.0.0.1 "
                "(stop what listens there, or choose another with --port or DEMONLAB_PORT)"
            ) from error
    try:
        return listening_socket("127.0.0.1", default), None
    except OSError:
        sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    return sock, f"port {default} is already in use; serving on {port} instead (choose one with --port)"


class FirstResultClock:
    """Seconds from submission to the study's first result and to its end, as ``make run`` reports them."""

    def __init__(self, submitted: float) -> None:
        self.submitted = submitted
        self.first: float | None = None

    def see(self, study: Any) -> None:
        """One progress update: the first with a result (completed, diverged or failed) is timed."""
        if self.first is None and (study.progress.done or study.progress.failed):
            self.first = time.monotonic() - self.submitted
            print(f"first result {self.first:.1f} s after submission", file=sys.stderr, flush=True)

    def summary(self, study: Any) -> str:
        """``first result 2.1 s after submission; all 150 trials 9.8 s``."""
        end = time.monotonic() - self.submitted
        first = "no result" if self.first is None else f"first result {self.first:.1f} s after submission"
        return f"{first}; all {study.progress.total} trials {end:.1f} s"


def start_server(sock: socket.socket) -> tuple[Any, threading.Thread]:
    """The app with its scheduler, served by uvicorn on the listening ``sock`` in a thread of this
    process, once it answers (``ServiceDidNotStart`` if it stops while starting)."""
    import uvicorn

    from .app import create_app
    from .settings import get_settings

    settings = get_settings()
    app = create_app(settings, run_scheduler=True)
    from .api.server import server_config
    from .console import SHUTDOWN_GRACE_S

    config = server_config(app, settings, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServiceDidNotStart("the API server did not start (see the log above)")
        time.sleep(0.1)
    return server, thread


def run_demo(
    *, port: int | None = None, spec_path: str | None = None, token: str | None = None, keep_serving: bool = True
) -> int:
    """Serve, submit, follow, summarise, keep serving (unless ``keep_serving`` is false).

    ``token`` (the CLI passes ``DEMONLAB_TOKEN``) authorises the submission once tokens exist; without
    one on a database that has tokens, the demo stops before starting anything and says what to do."""
    from .client import DemonlabClient
    from .console import follow, read_spec, safe_url
    from .settings import get_settings

    started = time.monotonic()
    settings = get_settings()
    spec = read_spec(spec_path or str(EXAMPLE))
    from .submission import check_runnable, validate_spec

    check_runnable(validate_spec(spec, settings), settings)  # a bad spec is said before anything starts
    if not token and _tokens_configured(settings):
        raise ValueError(
            "this database has API tokens, so submitting needs one: set DEMONLAB_TOKEN=<token> "
            "(make one with `demonlab token create`)"
        )
    if port is None and "port" in settings.model_fields_set:  # DEMONLAB_PORT: asked for as much as --port
        port = settings.port
    sock, note = pick_port(port, settings.port)
    if note:
        print(f"demonlab: {note}", flush=True)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(f"dashboard: {base}/  (open it in a browser to follow the study live)", flush=True)
    print(f"demonlab: starting the service at {base} (database {safe_url(settings.database_url)})", flush=True)
    server, thread = start_server(sock)
    _wait_for_warm_drivers(server.config.app, started)
    client = DemonlabClient(base, token=token)
    try:
        submitted = time.monotonic()
        created = client.submit(spec)
        print(
            f"submitted {spec.get('name')!r} as study {created.id}: {created.trials_total} trials "
            f"({base}{created.url})",
            flush=True,
        )
        print(f"  live in the dashboard: {base}/studies/{created.id}", flush=True)
        clock = FirstResultClock(submitted)
        study = follow(client, created.id, on_progress=clock.see)
        print(f"study {study.id}: {study.status.label}" + (f" — {study.error}" if study.error else ""))
        print(clock.summary(study), flush=True)
        if StudyStatus(study.status).has_results:
            _summarise(client, study.id, settings.data_dir, base)
    except BaseException:
        server.should_exit = True
        thread.join(timeout=15)
        raise
    if not keep_serving:
        server.should_exit = True
        thread.join(timeout=15)
        return 0
    print(f"\nserving the dashboard at {base}/ (API docs at {base}/docs) until Ctrl-C", flush=True)
    try:
        while thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    return 0


WARM_UP_WAIT_S = 60.0  # the longest the demo waits for the warm driver before submitting anyway


def _wait_for_warm_drivers(app: Any, started: float) -> None:
    """Wait until the scheduler's launcher is ready (its warm process has imported torch and the
    rest, ``service.jobs.forkserver``), so the study is submitted to a service that can start it at
    once: what a service up for a while does. Says how long the service took to be ready."""
    scheduler = getattr(app.state, "scheduler", None)
    if scheduler is None:
        return
    ready = scheduler.launcher.warm(wait=WARM_UP_WAIT_S)
    state = "ready" if ready else f"still warming up after {WARM_UP_WAIT_S:.0f} s; submitting anyway"
    print(f"demonlab: service {state} ({time.monotonic() - started:.1f} s after start)", flush=True)


def _tokens_configured(settings: Any) -> bool:
    """Whether the API will ask for a token (the database holds one, or settings require it)."""
    from .db import dal
    from .db.engine import make_engine, session_scope
    from .db.migrations import upgrade_to_head

    if settings.api_tokens_required:
        return True
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        upgrade_to_head(engine)
        with session_scope(engine) as session:
            return dal.any_tokens(session)
    finally:
        engine.dispose()


def _summarise(client: Any, study_id: str, data_dir: Path, base: str) -> None:
    from studies.report_text import pair_lines, summary_table, verdict_lines

    report = client.sensitivity(study_id)
    print()
    print("\n".join([*verdict_lines(report), "", summary_table(report), *pair_lines(report)]))
    out = data_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{study_id}-heatmap.png", out / f"{study_id}-heatmap.svg"
    png.write_bytes(client.heatmap(study_id, fmt="png"))
    svg.write_bytes(client.heatmap(study_id, fmt="svg"))
    print(f"\nheatmaps: {png} and {svg}")
    print(f"  also at {base}/api/v1/studies/{study_id}/heatmap.png")
    print(f"sensitivity: {base}/api/v1/studies/{study_id}/sensitivity")
    print(f"grid:        {base}/api/v1/studies/{study_id}/grid?arm=demon_sgdm")
    print(f"trials:      {base}/api/v1/studies/{study_id}/export.csv")
