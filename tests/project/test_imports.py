"""The package import graph: no cycle (function-local imports included), and the light entry points
(the HTTP client, the app, the CLI) import neither torch nor scipy until something needs them."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("demon", "studies", "service")


def _modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The project modules ``module`` imports anywhere in its body (top level or inside functions).

    ``from package import name`` depends on ``package.name`` when that is a module, else on the
    package; an import of ``a.b.c`` resolves to the longest prefix that is a project module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                names.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def import_graph() -> dict[str, set[str]]:
    """module → the project modules it imports."""
    known = _modules()
    return {module: set(_imported(module, path, known)) for module, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert graph["service.jobs.forkserver"] >= {"service.jobs.driver"}  # function-local imports count
    assert cycles(graph) == []


def test_the_job_layer_never_reaches_up_into_the_dashboard_nor_the_cli() -> None:
    """The driver stores a finished study's heatmaps: it computes them with ``service.heatmap_grids``,
    beside the sensitivity report, not through the dashboard's web package (routes, templates)."""
    graph = import_graph()
    jobs = [module for module in graph if module.startswith("service.jobs")]
    reached = {(module, target) for module in jobs for target in graph[module]}
    upward = sorted((m, t) for m, t in reached if t.startswith(("service.dashboard", "service.cli")))
    assert upward == []
    assert "service.heatmap_grids" in graph["service.jobs.driver"]


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import() -> None:
    """The check above cannot pass vacuously: the old driver path (jobs → CLI) is a cycle to it."""
    graph = import_graph()
    graph["service.jobs.forkserver"].add("service.cli")
    assert any({"service.cli", "service.jobs.forkserver"} <= set(c) for c in cycles(graph))


HEAVY = ("torch", "scipy", "ray", "sklearn", "matplotlib", "optuna")


def _loaded_after(code: str) -> dict[str, bool]:
    """Which heavy packages (and SQLAlchemy, numpy, pandas) a fresh interpreter has imported after ``code``."""
    return _modules_after(code, [*HEAVY, "sqlalchemy", "numpy", "pandas"])


def test_the_http_client_imports_no_heavy_package_nor_the_database() -> None:
    loaded = _loaded_after("import service.client")  # not even numpy: every CLI API command imports it
    assert not any(loaded.values()), loaded


def test_demonlab_list_imports_no_atlas_model() -> None:
    """``demonlab list`` (the issue's ≤ 0.5 s command) builds no atlas model: they cost it ~40 ms and
    only the atlas commands read them."""
    code = "from service.cli import main\nmain(['list', '--url', 'http://127.0.0.1:9'])"  # refused: nothing listens
    assert _modules_after(code, ["service.client", "studies.atlas.models"]) == {
        "service.client": True,
        "studies.atlas.models": False,
    }


@pytest.mark.parametrize(
    "code",
    [
        "import service.app",
        # building the app and its OpenAPI document (what /openapi.json serves) needs no route's imports
        "from service.app import create_app\nfrom service.settings import Settings\n"
        "create_app(Settings(data_dir='.work/imports-test')).openapi()",
    ],
)
def test_the_app_imports_neither_torch_nor_scipy(code: str) -> None:
    loaded = _loaded_after(code)
    assert not any(loaded[m] for m in HEAVY), loaded


def test_the_cli_starts_without_importing_the_service() -> None:
    loaded = _loaded_after("from service.cli import build_parser\nbuild_parser().parse_args(['list'])")
    assert not any(loaded.values()), loaded


def _private_uses() -> set[str]:
    """``module uses other.name`` for every private name (``_x``) a module takes from a module of another
    package, by ``from other import _x`` or ``other._x``, and every private module (``pkg/_x.py``) it
    imports from another package (the modules of one package may share theirs)."""
    known = _modules()
    found: set[str] = set()
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base in known and _private(base.rpartition(".")[2]) and _package(base, known) != package:
                found.add(f"{module} imports the private module {base}")
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                    if _private(alias.name) and base != package:
                        found.add(f"{module} imports the private module {base}.{alias.name}")
                elif _private(alias.name) and base in known and _package(base, known) != package:
                    found.add(f"{module} uses {base}.{alias.name}")
        for node in ast.walk(tree):
            attribute = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if attribute and node.value.id in aliases and _private(node.attr):  # type: ignore[attr-defined]
                other = aliases[node.value.id]  # type: ignore[attr-defined]
                if _package(other, known) != package:
                    found.add(f"{module} uses {other}.{node.attr}")  # type: ignore[attr-defined]
    return found


def _package(module: str, known: dict[str, Path]) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to the package itself)."""
    return module if known[module].name == "__init__.py" else module.rpartition(".")[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reaches_into_another_modules_private_names() -> None:
    """The dashboard read ``analysis._cached/_frame/_axes/_progress_key``: a public API now."""
    assert _private_uses() == set()


def _defined_public_names(module: str) -> set[str]:
    path = _modules()[module]
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not _private(node.name)
    }


@pytest.mark.parametrize("module", ["service.db.dal", "service.schemas", "service.analysis"])
def test_every_public_name_of_the_service_layers_is_used_by_the_service(module: str) -> None:
    """Dead code used by tests only (``dal.grid_aggregate``/``GridCell``, ``dal.verify_token``) or by
    nothing (``schemas.TokenCreated``) was removed: a public name must have a caller in the code."""
    own = _modules()[module]
    code = "\n".join(p.read_text() for m, p in _modules().items() if p != own)
    text = own.read_text()
    unused = sorted(
        name
        for name in _defined_public_names(module)
        if not re.search(rf"\b{name}\b", code) and len(re.findall(rf"\b{name}\b", text)) <= 1
    )
    assert unused == []


def _modules_after(code: str, names: list[str]) -> dict[str, bool]:
    """Which of ``names`` a fresh interpreter has imported after ``code`` (the last line it prints)."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {names!r}}}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_the_warm_process_imports_torch_but_not_dynamo_nor_scikit_learn() -> None:
    """``service.jobs.forkserver.warm_up``: what every driver needs, not what only some drivers use
    (``torch._dynamo`` ~1.4 CPU s, scikit-learn ~1 s; every warm process paid both)."""
    loaded = _modules_after(
        "from service.jobs.forkserver import warm_up\nwarm_up()",
        ["torch", "sqlalchemy", "service.jobs.driver", "studies.packed", "torch._dynamo", "sklearn"],
    )
    assert loaded == {
        "torch": True,
        "sqlalchemy": True,
        "service.jobs.driver": True,
        "studies.packed": True,
        "torch._dynamo": False,
        "sklearn": False,
    }


def test_a_packed_study_trains_without_torch_dynamo_or_scikit_learn(tmp_path: Path) -> None:
    """Why the warm process may leave them out: the default (packed) driver's training, on make run's
    workload, imports neither (a pack builds no torch optimizer; the digits ship as ``.npz``)."""
    code = (
        "import yaml\n"
        "from studies.executors import execute_study\n"
        "from studies.spec import StudySpec\n"
        "data = yaml.safe_load(open('studies/examples/digits.yaml'))\n"
        "data.update(lr=[0.1], beta_init=[0.9], seeds=1, epochs=1, execution={'mode': 'packed'})\n"
        "spec = StudySpec.model_validate(data)\n"
        "results = []\n"
        f"summary = execute_study(spec, results.append, executor='inprocess', data_dir={str(tmp_path)!r})\n"
        "assert len(results) == 3 and summary.failed == 0, (results, summary)\n"
    )
    loaded = _modules_after(code, ["studies.packed.trainer", "torch._dynamo", "sklearn"])
    assert loaded == {"studies.packed.trainer": True, "torch._dynamo": False, "sklearn": False}
