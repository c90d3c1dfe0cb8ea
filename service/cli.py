"""The ``demonlab`` command line.

- Local, no service: ``run`` (a spec to files), ``demo`` (what ``make run`` runs).
- Service processes: ``serve`` (API + scheduler), ``scheduler``, ``execute STUDY_ID`` (a driver).
- Client commands over HTTP: ``submit``, ``status``, ``list``, ``cancel``, ``delete``, ``trials``, ``grid``,
  ``sensitivity``, ``compare``, ``robustness``, ``heatmap``, ``export``, ``replicate`` (Fig. 2 beside the paper).
- ``token create`` / ``list`` / ``revoke`` (on the database directly, like ``serve``).

What the demo shares with these commands (reading specs, following a study, tables) lives in
``service.console``, so this module and ``service.demo`` never import each other.

Every heavy import happens inside the command that needs it, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .console import SHUTDOWN_GRACE_S, safe_url
from .logs import configure_logging

if TYPE_CHECKING:
    from .schemas import SensitivityPublic

DEFAULT_URL = "http://127.0.0.1:8000"
EXPORT_FORMATS = ("csv", "parquet")
# What an interrupted `demonlab run` says: until its outputs are moved into --out at once, nothing was
# written there; from then on (the summary being printed) they are complete.
INTERRUPTED_BEFORE_WRITING = (
    "nothing was written to --out; the same command again runs the study (packs resume from their checkpoints)"
)
INTERRUPTED_AFTER_WRITING = (
    "every output was written to --out, complete; the summary printed here may be cut short (metrics.json holds it)"
)


def _client(args: argparse.Namespace) -> Any:
    from .client import DemonlabClient

    return DemonlabClient(args.url, token=args.token)


def _cmd_run(args: argparse.Namespace) -> int:
    from studies.local import print_report, run_local
    from studies.spec import load_spec

    spec = load_spec(args.spec)
    out = Path(args.out)

    def published() -> None:  # an interrupt from here on finds this run's outputs in --out, complete
        args.interrupted = INTERRUPTED_AFTER_WRITING

    # `timeout`, systemd, docker: stop as Ctrl-C does; the caller's handler is back afterwards (the
    # console script exits; an in-process caller, a test, keeps its own)
    before = signal.signal(signal.SIGTERM, _terminated)
    try:
        report = run_local(
            spec,
            out,
            executor=args.executor,
            data_dir=Path(args.data_dir),
            dataset_dir=Path(args.dataset_dir) if args.dataset_dir else None,
            on_published=published,
        )
        print_report(report, out)
    finally:
        signal.signal(signal.SIGTERM, before)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api.server import listening_socket, server_config
    from .app import create_app
    from .settings import get_settings

    settings = get_settings()
    _writable_data_dir(settings.data_dir)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    app = create_app(settings, run_scheduler=not args.no_scheduler)
    # Bound here, so `--port 0` takes a free port and the line below says which (no guess, no race).
    sock = listening_socket(host, port)
    port = sock.getsockname()[1]
    threading.Thread(target=_freeze_long_lived, name="demonlab-warm-up", daemon=True).start()
    print(
        f"demonlab: dashboard at http://{host}:{port}/ and API docs at http://{host}:{port}/docs "
        f"(database {safe_url(settings.database_url)})",
        flush=True,
    )
    # Open event streams (a dashboard tab, `submit --wait`) never end by themselves: give them a few
    # seconds on shutdown, then close them, rather than waiting for every browser to go away.
    config = server_config(app, settings, log_level=args.log_level, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM to ``demonlab run``: handled as Ctrl-C is (forked packs stopped after saving, --out as
    the interrupt found it, one line), but said as what it was and exit 143. It ended the run without
    a word, and the packs trained on, orphaned, to the end of their epoch."""


def _terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def _writable_data_dir(path: Path) -> None:
    """Make the data dir (the SQLite database, logs, checkpoints live there) and check that a file can
    be written in it, before the server starts: a data dir that is a file, on a read-only mount or
    out of space ended the start-up in a 180-line traceback. ``OSError`` naming the setting."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OSError(f"the data dir {path} (DEMONLAB_DATA_DIR) is not a folder this user can write to: {exc}") from exc


def _freeze_long_lived() -> None:
    """Import what the results endpoints import on first use, then exempt every object alive now from
    the cyclic GC (``gc.freeze``). Otherwise each full collection walks ~300,000 long-lived objects
    (torch, pandas, the app) and, under load, stops every request for 150-450 ms (bench/api_latency.py).

    It runs in a background thread, so the server answers at once (``/healthz``) while the heavy
    imports (torch via the workloads) happen; the first results request no longer pays for them."""
    import gc
    import importlib

    for module in ("studies.metrics", "studies.report", "studies.workloads", "service.analysis", "matplotlib.colors"):
        importlib.import_module(module)
    gc.collect()
    gc.freeze()


def _cmd_scheduler(args: argparse.Namespace) -> int:
    from .db.engine import make_engine
    from .db.migrations import upgrade_to_head
    from .jobs.scheduler import Scheduler
    from .settings import get_settings

    settings = get_settings()
    _writable_data_dir(settings.data_dir)
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    print(
        f"demonlab: scheduler on {safe_url(settings.database_url)} (launcher {settings.launcher})",
        flush=True,
    )
    Scheduler(settings, engine, poll_seconds=args.poll).run()
    return 0


def _cmd_execute(args: argparse.Namespace) -> int:
    from .jobs.driver import execute
    from .settings import get_settings

    return execute(args.study_id, get_settings(), attempt=args.attempt)


def _cmd_submit(args: argparse.Namespace) -> int:
    from .console import read_spec

    client = _client(args)
    created = client.submit(read_spec(args.spec), idempotency_key=args.idempotency_key)
    print(f"study {created.id}: {created.status.label}, {created.trials_total} trials, {args.url}{created.url}")
    if args.wait:
        from .console import follow

        study = follow(client, created.id)
        print(f"study {study.id}: {study.status.label}" + (f" ({study.error})" if study.error else ""))
        return 0 if study.status == "completed" else 1
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    study = client.get_study(args.study_id)
    if study.status.has_results:  # the answer first
        from studies.report_text import verdict_lines

        from .errors import ApiError

        try:
            print("\n".join(verdict_lines(client.sensitivity(study.id))))
        except ApiError as exc:
            if exc.status != 409:  # no report (a search that sampled nothing, a spec this version cannot read)
                raise
            print(f"no verdict: {exc.detail}")
    p = study.progress
    print(f"{study.id} {study.name!r} [{study.workload}] {study.status.label}: {p.done}/{p.total} done,", end=" ")
    print(f"{p.diverged} diverged, {p.failed} failed")
    if study.error:
        print(f"error: {study.error}")
    if study.environment:
        from .console import environment_lines

        print("\n".join(environment_lines(study.environment)))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .console import table

    status = args.status.replace(" ", "_") if args.status else None  # "completed with failures" as shown
    page = _client(args).list_studies(status=status, workload=args.workload, name_contains=args.name, limit=args.limit)
    rows = [[s.id, s.status.label, f"{s.progress.done}/{s.progress.total}", s.workload, s.name] for s in page.data]
    print(table(["id", "status", "done/total", "workload", "name"], rows))
    print(f"({len(page.data)} of {page.count})")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from studies.units import is_percent, percent

    grid = _client(args).grid(args.study_id, arm=args.arm, metric=args.metric, split=args.split, stat=args.stat)
    values = [v for row in grid.values for v in row if v is not None]
    in_percent = is_percent(grid.metric, values, None)  # an error rate: in percent, as every other output
    unit = " (%)" if in_percent else ""
    print(
        f"{grid.arm}: {grid.stat} {grid.split} {grid.metric}{unit} over seeds "
        "(rows lr, columns beta_init; x = every seed diverged, * = some did)"
    )
    print(f"{'lr':>10} " + " ".join(f"{b:>9g}" for b in grid.betas))
    for i, lr in enumerate(grid.lrs):
        cells = []
        for j in range(len(grid.betas)):
            value, n, diverged = grid.values[i][j], grid.n[i][j], grid.diverged[i][j]
            if n and diverged == n:
                cells.append(f"{'x':>9}")
                continue
            shown = "-" if value is None else percent(value).removesuffix("%") if in_percent else f"{value:.4g}"
            cells.append(f"{shown + ('*' if diverged else ''):>9}")
        print(f"{lr:>10g} " + " ".join(cells))
    return 0


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    report = _client(args).sensitivity(args.study_id, target=args.target, metric=args.metric, split=args.split)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    from studies.report_text import pair_lines, summary_table, verdict_lines

    print("\n".join([*verdict_lines(report), summary_table(report), *pair_lines(report)]))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    report: SensitivityPublic = _client(args).sensitivity(
        args.study_id, target=args.target, metric=args.metric, split=args.split
    )
    pairs = [p for p in report.pairs if (args.a in (None, p.arm_a)) and (args.b in (None, p.arm_b))]
    if not pairs and (args.a or args.b):  # a pair asked for that is not there: a refused request (exit 2)
        raise ValueError(_missing_pair(report, args.a, args.b))
    if not pairs:  # nothing asked for, nothing to compare: not an error of the request
        print(f"demonlab: {_missing_pair(report, args.a, args.b)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in pairs], indent=2))
        return 0
    from .console import compare_table

    print(compare_table(pairs, report.units))
    return 0


def _missing_pair(report: SensitivityPublic, a: str | None, b: str | None) -> str:
    """Why ``compare`` has nothing to show, and what it could show instead."""
    existing = [(p.arm_a, p.arm_b) for p in report.pairs]
    if not existing:
        arms = ", ".join(sorted(report.arms)) or "none with results"
        pair = "a pair is a Demon arm and a baseline"
        return f"nothing to compare: the report has no pair of arms ({pair}; arms: {arms})"
    asked = f"{a or 'any arm'} vs {b or 'any arm'}"
    listed = ", ".join(f"--a {x} --b {y}" for x, y in existing)
    swapped = f" (did you mean --a {b} --b {a}?)" if (b, a) in existing else ""
    return f"no pair {asked} in the report{swapped}; the pairs it has: {listed}"


def _cmd_cancel(args: argparse.Namespace) -> int:
    study = _client(args).cancel(args.study_id)
    print(f"study {study.id}: {study.status.label}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    _client(args).delete(args.study_id)
    print(f"study {args.study_id}: deleted")
    return 0


def _cmd_trials(args: argparse.Namespace) -> int:
    page = _client(args).trials(args.study_id, arm=args.arm, status=args.status, offset=args.offset, limit=args.limit)
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in page.data], indent=2))
        return 0
    from studies.units import is_percent
    from studies.vocab import workload_entry

    from .console import trials_table

    study = _client(args).get_study(args.study_id)
    try:  # the scores' name: the spec's metric, else its workload's
        metric = str(study.spec.get("metric") or workload_entry(study.workload).metric_name)
    except ValueError:  # a workload this release does not know: no unit claimed
        metric = ""
    scores = [x for t in page.data for x in (t.val_metric, t.test_metric) if isinstance(x, float)]
    print(trials_table(page.data, percent=is_percent(metric, scores, None)))
    print(f"({len(page.data)} of {page.count}, from {page.offset})")
    return 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    result = _client(args).robustness(args.workload, arm=args.arm, epochs=args.epochs)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    from .console import robustness_table

    print(robustness_table(result))
    return 0


def _cmd_heatmap(args: argparse.Namespace) -> int:
    out = Path(args.out)
    fmt = out.suffix.lstrip(".").lower() or "png"  # heat.PNG as export's trials.CSV
    if fmt not in ("png", "svg"):
        raise ValueError(f"--out: heatmaps are .png or .svg (got {out.name!r})")
    data = _client(args).heatmap(args.study_id, fmt=fmt, metric=args.metric, split=args.split, arms=args.arms)
    out.write_bytes(data)
    print(f"wrote {out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--out: exports are .csv or .parquet (got {out.name!r}); name the file with one of those")
    out.write_bytes(_client(args).export(args.study_id, fmt=fmt))
    print(f"wrote {out}")
    return 0


def _cmd_replicate(args: argparse.Namespace) -> int:
    from studies.replicate import from_export, from_files, replication_report, report_text, write_report

    source = Path(args.study)
    if source.exists():
        trials, study = from_files(source, Path(args.spec) if args.spec else None)
    elif args.spec or not re.fullmatch(r"[0-9a-f]{12}", args.study):  # a path mistyped, not a study id
        raise ValueError(f"{args.study}: no such file or folder (a study id is 12 hex digits)")
    else:
        trials, study = from_export(_client(args).export(args.study, fmt="parquet"))
    report = replication_report(trials, study, paper=args.paper)
    print(report.model_dump_json(indent=2) if args.json else report_text(report))
    if args.out:
        print("wrote " + ", ".join(str(p) for p in write_report(report, Path(args.out))), file=sys.stderr)
    return 0


def _token_engine() -> Any:
    from .db.engine import make_engine
    from .db.migrations import upgrade_to_head
    from .settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    return engine


def _cmd_token_create(args: argparse.Namespace) -> int:
    from .db import dal
    from .db.engine import session_scope
    from .tokens import expiry_from

    expires_at = expiry_from(args.expires_in) if args.expires_in else None
    engine = _token_engine()
    try:
        with session_scope(engine) as session:
            token = dal.create_token(session, args.name, expires_at=expires_at)
    finally:
        engine.dispose()
    print(token)
    until = f"; expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    print(
        f"(shown once; stored only as a hash{until}. Send it as 'Authorization: Bearer <token>')",
        file=sys.stderr,
    )
    print(_token_database_note(), file=sys.stderr)
    print(_token_server_check(args.url, token), file=sys.stderr)
    return 0


def _token_database_note() -> str:
    """Which database the token went to, saying so when it is only the default one."""
    from .settings import get_settings

    settings = get_settings()
    note = f"stored in the database {safe_url(settings.database_url)}"
    if not {"data_dir", "database_url"} & settings.model_fields_set:
        note += " (the default: DEMONLAB_DATA_DIR and DEMONLAB_DATABASE_URL are not set)"
    return note


def _token_server_check(url: str, token: str) -> str:
    """Whether the server at ``url`` knows the new token: asked with a request that changes nothing
    (cancelling a study id that cannot exist: 404 once the token passed, 401 when it did not), since
    a server on another database stays open, or keeps refusing, whatever this command wrote."""
    import httpx

    probe = f"{url.rstrip('/')}/api/v1/studies/000000000000/cancel"
    try:
        with_token = httpx.post(probe, headers={"Authorization": f"Bearer {token}"}, timeout=5.0).status_code
        without = httpx.post(probe, timeout=5.0).status_code if with_token == 404 else None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return f"no server answered at {url} to check the token against ({exc or type(exc).__name__})"
    if (with_token, without) == (404, 401):
        return f"the server at {url} accepts this token"
    if with_token == 401 or (with_token, without) == (404, 404):
        why = "does not know this token" if with_token == 401 else "asks for no token at all"
        return (
            f"warning: the server at {url} {why}: it uses another database (start it with this command's "
            "DEMONLAB_DATA_DIR / DEMONLAB_DATABASE_URL, or create the token with the server's)"
        )
    return f"could not check the token against the server at {url} (HTTP {with_token})"


def _cmd_token_list(args: argparse.Namespace) -> int:
    from .console import table
    from .db import dal
    from .db.engine import session_scope

    engine = _token_engine()
    try:
        with session_scope(engine, read_only=True) as session:
            tokens = dal.list_tokens(session)
    finally:
        engine.dispose()

    def when(value: Any) -> str:
        return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"

    rows = [[str(t.id), t.name, when(t.created_at), when(t.last_used_at), when(t.expires_at), t.state] for t in tokens]
    print(table(["id", "name", "created (UTC)", "last used", "expires", "state"], rows))
    print(f"({len(tokens)} token{'' if len(tokens) == 1 else 's'})")
    return 0


def _cmd_token_revoke(args: argparse.Namespace) -> int:
    from .db import dal
    from .db.engine import session_scope

    engine = _token_engine()
    try:
        with session_scope(engine) as session:
            revoked = dal.revoke_token(session, args.name, token_id=args.id)
    finally:
        engine.dispose()
    print(f"revoked token {revoked.id} ({revoked.name!r})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(port=args.port, spec_path=args.spec, token=args.token, keep_serving=not args.exit_when_done)


def _cmd_atlas(args: argparse.Namespace) -> int:
    from .atlas_cli import run_atlas

    return run_atlas(
        suite=args.suite,
        seeds=args.seeds,
        workloads=args.workloads,
        out=Path(args.out) if args.out else None,
        url=args.url,
        token=args.token,
        port=args.port,
    )


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless it has none or its help already says it (a
    default read from the environment, such as a token, is never printed)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return super()._get_help_string(action)


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("DEMONLAB_URL", DEFAULT_URL),
        help=f"the service's URL (default: $DEMONLAB_URL, else {DEFAULT_URL}; now %(default)s)",
    )
    p.add_argument("--token", default=os.environ.get("DEMONLAB_TOKEN"), help="API token (default: $DEMONLAB_TOKEN)")


def _score_args(p: argparse.ArgumentParser, split: str) -> None:
    from studies.vocab import SPLITS

    p.add_argument("--metric", default=None, help="the workload's metric, or 'loss' (default: the study's metric)")
    p.add_argument("--split", default=split, choices=SPLITS, help="which held-out split the scores are read on")


def _target_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target", type=float, default=None, help="the error (or loss) a run must reach (at most), raw units"
    )


def _study_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_id", help="the study's id (from `demonlab list` or `demonlab submit`)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command; every option and argument has help, defaults shown."""
    from studies.vocab import STATS, StudyStatus, TrialStatus

    parser = argparse.ArgumentParser(
        prog="demonlab", description="Hyperparameter-sensitivity studies of the Demon optimizer.", formatter_class=_Help
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)

    p = command("run", "run a study spec locally (no service) and write its outputs")
    p.add_argument("spec", help="study spec, YAML or JSON")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--executor",
        choices=["auto", "inprocess", "ray"],
        default="auto",
        help="where the trials run: auto packs a study whose workload packs in this process (one pack per "
        "core) and runs per-trial grids and searches on a local Ray",
    )
    p.add_argument("--data-dir", default=".work", help="work dir for Ray's temp dir, Tune and pack checkpoints")
    p.add_argument("--dataset-dir", default=None, help="where workloads find datasets (default: DATA_DIR/datasets)")
    p.set_defaults(
        func=_cmd_run,
        exit_at_once=True,
        interrupted=INTERRUPTED_BEFORE_WRITING,
    )

    p = command("demo", "what `make run` does: serve, submit the digits example, follow it, summarise")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="port, refused if busy; 0 takes a free one (default: $DEMONLAB_PORT or 8000)",
    )
    p.add_argument("--spec", default=None, help="spec to submit (default: studies/examples/digits.yaml)")
    p.add_argument("--token", default=os.environ.get("DEMONLAB_TOKEN"), help="API token (default: $DEMONLAB_TOKEN)")
    p.add_argument("--exit-when-done", action="store_true", help="stop serving once the study is summarised")
    p.set_defaults(func=_cmd_demo, exit_at_once=True)  # once it has stopped serving

    p = command("atlas", "one study per (workload, optimizer family) of a suite; the answer across them")
    p.add_argument("--suite", default="cpu", choices=["cpu", "paper", "smoke"], help="which suite of workloads")
    p.add_argument("--seeds", type=int, default=8, help="seeds per study")
    p.add_argument("--workloads", nargs="*", default=None, help="only these workloads of the suite (labels)")
    p.add_argument("--out", default=None, help="report folder (default: DATA_DIR/atlas; with --url: none)")
    p.add_argument("--url", default=None, help="a running service (default: start one in this process)")
    p.add_argument(
        "--port", type=int, default=None, help="port of the service started here; 0 takes a free one (default: 8000)"
    )
    p.add_argument("--token", default=os.environ.get("DEMONLAB_TOKEN"), help="API token (default: $DEMONLAB_TOKEN)")
    p.set_defaults(func=_cmd_atlas)

    p = command("serve", "the HTTP API, the dashboard and the scheduler")
    p.add_argument("--host", default=None, help="bind address (default: $DEMONLAB_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port; 0 takes a free one (default: $DEMONLAB_PORT or 8000)")
    p.add_argument("--no-scheduler", action="store_true", help="API only (run `demonlab scheduler` elsewhere)")
    p.add_argument("--log-level", default="info", help="uvicorn's log level (debug, info, warning, error)")
    p.set_defaults(func=_cmd_serve)

    p = command("scheduler", "the scheduler loop alone (launches and recovers study drivers)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between ticks")
    p.set_defaults(func=_cmd_scheduler)

    p = command("execute", "drive one study (what the scheduler launches: python -m service.jobs.driver)")
    _study_arg(p)
    p.add_argument("--attempt", type=int, default=None, help="the launch this driver belongs to (set by the scheduler)")
    p.set_defaults(func=_cmd_execute)

    p = command("submit", "submit a spec (YAML or JSON) to the service")
    p.add_argument("spec", help="study spec, YAML or JSON")
    p.add_argument("--wait", action="store_true", help="follow the study's progress until it finishes")
    p.add_argument("--idempotency-key", default=None, help="a key: submitting it again returns the same study")
    _client_args(p)
    p.set_defaults(func=_cmd_submit)

    for name, func, help_text in (
        ("status", _cmd_status, "a study's status and progress"),
        ("cancel", _cmd_cancel, "cancel a queued or running study (its finished trials are kept)"),
        ("delete", _cmd_delete, "delete a study and its trials (refused while it runs: cancel it first)"),
    ):
        p = command(name, help_text)
        _study_arg(p)
        _client_args(p)
        p.set_defaults(func=func)

    p = command("list", "list studies, newest first")
    p.add_argument(
        "--status",
        default=None,
        type=lambda text: text.replace("_", " "),  # "completed_with_failures" as the API spells it, too
        choices=[s.label for s in StudyStatus],
        help="only studies in this state",
    )
    p.add_argument("--workload", default=None, help="only studies of this workload")
    p.add_argument("--name", default=None, help="only studies whose name contains this (any case)")
    p.add_argument("--limit", type=int, default=50, help="at most this many")
    _client_args(p)
    p.set_defaults(func=_cmd_list)

    p = command("trials", "a study's trials as a table (a page of them)")
    _study_arg(p)
    p.add_argument("--arm", default=None, help="only this arm's trials")
    p.add_argument("--status", default=None, choices=list(TrialStatus), help="only trials in this state")
    p.add_argument("--offset", type=int, default=0, help="trials to skip (default: 0)")
    p.add_argument("--limit", type=int, default=100, help="at most this many")
    p.add_argument("--json", action="store_true", help="print the trials as JSON")
    _client_args(p)
    p.set_defaults(func=_cmd_trials)

    p = command("grid", "one arm's grid as a terminal table")
    _study_arg(p)
    p.add_argument("--arm", default=None, help="the arm (default: the study's first)")
    p.add_argument("--stat", default="median", choices=STATS, help="the statistic over each cell's seeds")
    _score_args(p, "test")
    _client_args(p)
    p.set_defaults(func=_cmd_grid)

    p = command("sensitivity", "each pair's verdict, then the figures per arm and per pair")
    _study_arg(p)
    _target_arg(p)
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    _score_args(p, "test")
    _client_args(p)
    p.set_defaults(func=_cmd_sensitivity)

    p = command("compare", "Demon against a baseline: the verdict, the primary Δ with its interval, seed planning")
    _study_arg(p)
    p.add_argument("--a", default=None, help="first arm (default: every Demon arm)")
    p.add_argument("--b", default=None, help="second arm (default: every baseline)")
    _target_arg(p)
    p.add_argument("--json", action="store_true", help="print the pairs as JSON")
    _score_args(p, "test")
    _client_args(p)
    p.set_defaults(func=_cmd_compare)

    p = command("robustness", "each arm's figures over every completed study of a workload")
    p.add_argument("workload", help="the workload (digits_mlp, synthetic, ...)")
    p.add_argument("--arm", default=None, help="only this arm (default: every arm)")
    p.add_argument("--epochs", type=int, default=None, help="only studies of this many epochs (default: all)")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    _client_args(p)
    p.set_defaults(func=_cmd_robustness)

    p = command("heatmap", "download the heatmap (.png or .svg)")
    _study_arg(p)
    p.add_argument("--out", required=True, help="file name; its suffix picks the format")
    p.add_argument("--arms", nargs="*", default=None, help="the arms to draw (default: every arm)")
    _score_args(p, "test")
    _client_args(p)
    p.set_defaults(func=_cmd_heatmap)

    p = command("export", "download every trial (.csv or .parquet)")
    _study_arg(p)
    p.add_argument("--out", required=True, help="file name; its suffix (.csv, .parquet) picks the format")
    _client_args(p)
    p.set_defaults(func=_cmd_export)

    p = command("replicate", "a finished Fig. 2 study beside the paper's cells, claims and verdicts")
    p.add_argument("study", help="study id, or a `demonlab run` output (directory or trials file) with --spec")
    p.add_argument("--paper", required=True, choices=("fig2-wrn", "fig2-vgg", "fig2-rn20"), help="the paper's panel")
    p.add_argument("--spec", default=None, help="the spec a local run ran (with a path as study)")
    p.add_argument("--out", default=None, help="also write replication.json, .png and .svg into this directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _client_args(p)
    p.set_defaults(func=_cmd_replicate)

    p = command("token", "API tokens, on the database of DEMONLAB_DATA_DIR / DEMONLAB_DATABASE_URL")
    token_sub = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t = token_sub.add_parser("create", help="create a token (printed once)", formatter_class=_Help)
    t.add_argument("--name", default="default", help="a name to recognise it by")
    t.add_argument("--expires-in", default=None, help="lifetime, e.g. 90m, 12h, 30d, 2w (default: no expiry)")
    t.add_argument(
        "--url",
        default=os.environ.get("DEMONLAB_URL", DEFAULT_URL),
        help=f"the server to check the token against (default: $DEMONLAB_URL, else {DEFAULT_URL}; now %(default)s)",
    )
    t.set_defaults(func=_cmd_token_create)
    t = token_sub.add_parser(
        "list", help="every token: id, name, created, last used, expiry, state", formatter_class=_Help
    )
    t.set_defaults(func=_cmd_token_list)
    t = token_sub.add_parser(
        "revoke", help="revoke a token by name or --id (it stops working at once)", formatter_class=_Help
    )
    who = t.add_mutually_exclusive_group(required=True)
    who.add_argument("name", nargs="?", help="the token's name (a name of digits is a name, not an id)")
    who.add_argument("--id", type=int, help="the token's id (from `token list`)")
    t.set_defaults(func=_cmd_token_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``demonlab`` console script."""
    configure_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    import httpx

    from .client import ApiError
    from .errors import DemonlabError

    try:
        code: int = args.func(args)
    except KeyboardInterrupt as exc:
        hint = getattr(args, "interrupted", "")
        said, code = ("terminated (SIGTERM)", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"demonlab: {said}" + (f": {hint}" if hint else ""), file=sys.stderr)
        if argv is None and getattr(args, "exit_at_once", False):
            _exit_at_once(code)  # the interpreter's teardown after an interrupted Ray run crashed at times (SIGSEGV)
        return code
    except BrokenPipeError as exc:  # the reader went away (`demonlab sensitivity ID | head -1`): quietly
        if not _stdout_reader_gone():  # another pipe (a child's, a queue's): an error like any other
            print(f"demonlab: error: {exc}", file=sys.stderr)
            return 2
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would raise it again
        return 141  # 128 + SIGPIPE, as a shell reports a command a pipe closed on
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # no server there, a timeout, a bad URL: no traceback
        where = getattr(args, "url", None) or "the service"
        print(f"demonlab: error: cannot reach the server at {where}: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(
            f"demonlab: error: {exc.detail}" + (f" (field: {exc.field})" if exc.field else ""),
            file=sys.stderr,
        )
        return 2
    except ValidationError as exc:  # a spec read here (run, demo): every field, on one line, as the API lists them
        from .errors import spec_errors

        listed = "; ".join(f"{e['field']}: {e['reason']}" for e in spec_errors(exc))
        print(f"demonlab: error: invalid spec: {listed}", file=sys.stderr)
        return 2
    except (ValueError, OSError, DemonlabError) as exc:  # a bad value, an unreadable or unwritable file
        print(f"demonlab: error: {exc}", file=sys.stderr)
        return 2
    if argv is None and getattr(args, "exit_at_once", False):
        _exit_at_once(code)
    return code


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (its write end polls as an error)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no fileno (captured), or no poll on this platform
        return False


def _exit_at_once(code: int) -> None:
    """End the console script of a heavy command (``run``: torch, pandas, matplotlib, scipy loaded;
    ``demo``, once its server has stopped) once its outputs are written and flushed, without the
    interpreter's teardown of the heap, which costs about two seconds there. Its files are closed by
    then; logging is shut down first."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
