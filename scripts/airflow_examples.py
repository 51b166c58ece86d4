"""Measure how many of Apache Airflow's own example DAG files import and run on rabbitrun (issue 16).

``scripts/airflow-examples --help``. The published wheels are downloaded at run time
(``pip download --no-deps``) into a cache outside the repository
(``$RABBITRUN_AIRFLOW_CACHE``, default ``~/.cache/rabbitrun-airflow-examples``); their files are
never copied into the repository. For each example file:

1. the port rule: every ``from airflow.<module> import <names>`` becomes
   ``from rabbitrun import <names>``, nothing else (``import airflow...`` lines stay and are
   reported as not ported); with ``--shim`` the file stays unchanged and
   ``[core] airflow_compat`` is on instead;
2. does it import in rabbitrun's DagBag (a fresh interpreter per file), and which error;
3. each DAG it defines runs alone with ``rabbitrun dags test DAG_ID`` (in-process: no broker,
   no worker) under a temporary RABBITRUN_HOME, with a per-DAG timeout.

Each file gets its own dags folder holding it and the example folder's helpers (``libs/``,
``plugins/``, ``sql/``), and its own copy of a freshly initialised SQLite database.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Wheels per Airflow version, and where the example DAGs sit inside each.
WHEELS: dict[str, list[tuple[str, str, str]]] = {
    # (requirement, wheel file name prefix, folder of example DAGs in the wheel)
    "2.10.5": [("apache-airflow==2.10.5", "apache_airflow-2.10.5-", "airflow/example_dags/")],
    "3.3.2": [
        ("apache-airflow-core==3.3.2", "apache_airflow_core-3.3.2-", "airflow/example_dags/"),
        (
            "apache-airflow-providers-standard==1.21.0",
            "apache_airflow_providers_standard-1.21.0-",
            "airflow/providers/standard/example_dags/",
        ),
    ],
}

#: Example files left out, and why: they need a service outside this machine (or a person).
LEFT_OUT = {
    "example_kubernetes_executor.py": "needs a Kubernetes cluster (pod_override, kubernetes client)",
    "example_local_kubernetes_executor.py": "needs a Kubernetes cluster (LocalKubernetesExecutor)",
    "tutorial_objectstorage.py": "reads an S3 bucket and a public HTTP API",
    "tutorial_taskflow_api_virtualenv.py": "pip-installs a package from the package index at run time",
    "example_hitl_operator.py": "waits for a person to answer through Airflow's UI (human in the loop)",
}

_FROM_AIRFLOW = re.compile(r"^(\s*)from\s+airflow(?:\.[\w.]+)?\s+import\b", re.MULTILINE)
_IMPORT_AIRFLOW = re.compile(r"^\s*import\s+airflow\b.*$", re.MULTILINE)

_IMPORT_PROBE = """
import json, sys
from pathlib import Path
from rabbitrun.authoring import DagBag
ref = sys.argv[2]
bag = DagBag(Path(sys.argv[1]), include_examples=False, airflow_compat=sys.argv[3] == "1")
err = bag.import_errors.get(ref)
print(json.dumps({
    "dags": sorted(d.dag_id for d in bag.dags.values() if d.fileloc == ref),
    "error": err.exception if err else None,
    "line": err.lineno if err else None,
}))
"""


@dataclass
class FileResult:
    """One example file: whether it imports, and how each of its DAGs ran."""

    file: str
    imports: bool = False
    error: str | None = None  # the first missing feature or error (import, else the first failed DAG)
    not_ported: list[str] = field(default_factory=list)
    dags: dict[str, str] = field(default_factory=dict)  # dag_id -> success | failed: reason | timeout


def port(source: str) -> tuple[str, list[str]]:
    """Apply the port rule (from airflow.<module> import -> from rabbitrun import); the import-airflow lines left."""
    return _FROM_AIRFLOW.sub(r"\1from rabbitrun import", source), [
        m.group(0).strip() for m in _IMPORT_AIRFLOW.finditer(source)
    ]


def wheel_paths(version: str, cache: Path) -> list[tuple[Path, str]]:
    """The wheels of ``version`` in ``cache``, downloading those missing; each with its example folder."""
    cache.mkdir(parents=True, exist_ok=True)
    found: list[tuple[Path, str]] = []
    for requirement, prefix, folder in WHEELS[version]:
        wheels = sorted(cache.glob(prefix + "*.whl"))
        if not wheels:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), requirement]
            subprocess.run(cmd, check=True)
            wheels = sorted(cache.glob(prefix + "*.whl"))
            if not wheels:
                raise SystemExit(f"airflow-examples: pip downloaded no {prefix}*.whl into {cache}")
        found.append((wheels[0], folder))
    return found


def extract(wheel: Path, folder: str, dest: Path) -> None:
    """The example folder of ``wheel`` (DAG files and their helpers, no caches) into ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not name.startswith(folder) or "__pycache__" in name or name.endswith("/"):
                continue
            target = dest / name[len(folder) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))


def example_files(root: Path) -> list[Path]:
    """The top-level example DAG files under each extracted folder, the left-out ones excepted."""
    return sorted(
        p
        for sub in sorted(root.iterdir())
        for p in sub.glob("*.py")
        if p.name != "__init__.py" and p.name not in LEFT_OUT
    )


def _dags_folder_for(example: Path, shim: bool, work: Path) -> tuple[Path, list[str]]:
    """A dags folder with only this file (ported unless ``shim``) beside its folder's helpers."""
    folder = work / example.parent.name / example.stem
    if folder.exists():
        shutil.rmtree(folder)
    for helper in example.parent.iterdir():
        if helper.is_dir():
            shutil.copytree(helper, folder / helper.name, ignore=shutil.ignore_patterns("*.py"))
    folder.mkdir(parents=True, exist_ok=True)
    source = example.read_text()
    not_ported: list[str] = []
    if not shim:
        source, not_ported = port(source)
    (folder / example.name).write_text(source)
    return folder, not_ported


def _env(home: Path, dags: Path, shim: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITRUN")}
    env.update(
        RABBITRUN_HOME=str(home),
        RABBITRUN__CORE__DAGS_FOLDER=str(dags),
        RABBITRUN__CORE__LOAD_EXAMPLES="false",
        RABBITRUN__CORE__AIRFLOW_COMPAT="true" if shim else "false",
    )
    return env


def _rabbitrun() -> list[str]:
    return [sys.executable, "-m", "rabbitrun"]


def _failure_reason(output: str) -> str:
    """The first failed task and its reason from ``dags test`` output, else its last line."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    for line in lines:
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[1] in ("failed", "upstream_failed") and parts[2].startswith("try="):
            return f"{parts[0]}: {parts[3] if len(parts) > 3 else parts[1]}"
    return lines[-1][:200] if lines else "no output"


def measure(example: Path, shim: bool, work: Path, template_db: Path, timeout_s: float) -> FileResult:
    """Import one example file, then run each of its DAGs alone."""
    name = f"{example.parent.name}/{example.name}"
    result = FileResult(file=name)
    dags, result.not_ported = _dags_folder_for(example, shim, work / "dags")
    home = work / "homes" / example.parent.name / example.stem
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(template_db, home / "rabbitrun.db")
    env = _env(home, dags, shim)
    probe = [sys.executable, "-c", _IMPORT_PROBE, str(dags), example.name, "1" if shim else "0"]
    try:
        done = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        result.error = f"import took longer than {timeout_s:.0f} s"
        return result
    except (json.JSONDecodeError, IndexError):
        result.error = (done.stderr.strip().splitlines() or ["import probe crashed"])[-1]
        return result
    if info["error"]:
        result.error = f"line {info['line']}: {info['error']}" if info["line"] else info["error"]
        return result
    result.imports = True
    for dag_id in info["dags"]:
        cmd = [*_rabbitrun(), "dags", "test", dag_id]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            result.dags[dag_id] = f"timeout after {timeout_s:.0f} s"
        else:
            result.dags[dag_id] = (
                "success" if done.returncode == 0 else "failed: " + _failure_reason(done.stdout + done.stderr)
            )
        if result.error is None and result.dags[dag_id] != "success":
            result.error = f"{dag_id}: {result.dags[dag_id]}"
    return result


def _template_db(work: Path) -> Path:
    home = work / "template"
    home.mkdir(parents=True, exist_ok=True)
    env = _env(home, work / "no-dags", shim=False)
    subprocess.run([*_rabbitrun(), "db", "init"], env=env, check=True, capture_output=True)
    return home / "rabbitrun.db"


def _print_table(results: list[FileResult], version: str, shim: bool) -> None:
    mode = "unchanged files, [core] airflow_compat on" if shim else "port rule"
    print(f"Airflow {version} example DAGs on rabbitrun ({mode})")
    print(f"{'file':<62} {'imports':<8} {'DAGs':>4} {'ok':>3}  first missing feature / error")
    for r in results:
        ok = sum(1 for s in r.dags.values() if s == "success")
        note = r.error or ""
        if r.not_ported:
            note = f"[not ported: {'; '.join(r.not_ported)}] {note}"
        print(f"{r.file:<62} {'yes' if r.imports else 'no':<8} {len(r.dags):>4} {ok:>3}  {note[:160]}")
    print()
    print(_totals_line(results))


def _totals_line(results: list[FileResult]) -> str:
    importing = sum(r.imports for r in results)
    dags = sum(len(r.dags) for r in results)
    ok = sum(1 for r in results for s in r.dags.values() if s == "success")
    return f"files importing: {importing} / {len(results)}   DAGs succeeding: {ok} / {dags}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/airflow-examples", description=__doc__.splitlines()[0])
    parser.add_argument("--airflow", choices=sorted(WHEELS), default="2.10.5", help="Airflow version (2.10.5)")
    parser.add_argument("--shim", action="store_true", help="unchanged files with [core] airflow_compat on")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="only the file NAME (or, if none is, files whose name contains NAME)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per import and per DAG run (60)")
    parser.add_argument("--jobs", type=int, default=2, help="files measured at once (2)")
    default_cache = os.environ.get("RABBITRUN_AIRFLOW_CACHE", str(Path.home() / ".cache/rabbitrun-airflow-examples"))
    parser.add_argument("--cache", type=Path, default=Path(default_cache), help="where the wheels are kept")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rabbitrun-airflow-examples-") as tmp:
        work = Path(tmp)
        for wheel, folder in wheel_paths(args.airflow, args.cache):
            extract(wheel, folder, work / "src" / ("standard" if "providers" in folder else "core"))
        files = example_files(work / "src")
        if args.only:
            exact = [f for f in files if f.name in args.only or f.stem in args.only]
            files = exact or [f for f in files if any(o in f.name for o in args.only)]
        template_db = _template_db(work)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda f: measure(f, args.shim, work, template_db, args.timeout), files))
    if args.json:
        importing = sum(r.imports for r in results)
        summary = {
            "airflow": args.airflow,
            "shim": args.shim,
            "files": len(results),
            "files_importing": importing,
            "dags": sum(len(r.dags) for r in results),
            "dags_succeeding": sum(1 for r in results for s in r.dags.values() if s == "success"),
            "left_out": LEFT_OUT,
            "results": [asdict(r) for r in results],
        }
        print(json.dumps(summary, indent=2))
    else:
        _print_table(results, args.airflow, args.shim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
