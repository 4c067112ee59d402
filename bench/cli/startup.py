"""How long `relance` takes to start: `relance --help` and each `relance X --help`, before and
after the lazy command loading (issue 16).

    uv run python bench/cli/startup.py [--before main] [--repeat 5] [--settings pyc,source]
                                          [--codes before,after]

The code "before" is the named git ref, unpacked with `git archive` into a scratch folder and
run with this checkout's virtualenv; "after" is this checkout. Each line is run --repeat times
in a fresh interpreter; the medians of the wall time and of the CPU time (user + system, of the
child: less sensitive to other work on the machine) are reported, in two settings:

- `pyc`: bytecode cached, as in an installed package (a first run writes the cache);
- `source`: PYTHONDONTWRITEBYTECODE=1 and no cache, every module compiled at each start (this
  sandbox's default, the worst case).

Also reports `python -X importtime -c "import console.cli"`: the cumulative import time of
console.cli and how many modules it loads. Writes bench/results/cli-startup.json (figures in
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

RUN = "import sys; sys.argv[0] = 'relance'; from console.cli import app; app()"
COUNT = "import sys, console.cli; print(len(sys.modules))"


def unpack(ref: str, into: Path) -> Path:
    """The tree of a git ref, without touching the repository's worktrees."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def clear_cache(tree: Path) -> None:
    """Remove the tree's bytecode, and the virtualenv's (the `source` setting)."""
    for base in (tree, Path(sys.prefix)):
        for d in base.rglob("__pycache__"):
            shutil.rmtree(d, ignore_errors=True)


def env_for(setting: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if setting == "source":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["COLUMNS"] = "100"
    return env


def once(tree: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one start (the command's output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{args} failed in {tree}: {r.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(tree: Path, args: list[str], setting: str, repeat: int) -> dict[str, Any]:
    env = env_for(setting)
    if setting == "pyc":
        once(tree, args, env)  # writes the bytecode cache
    runs = [once(tree, args, env) for _ in range(repeat)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    return {
        "command": " ".join(["relance", *args]),
        "setting": setting,
        "wall_median_s": round(statistics.median(walls), 3),
        "cpu_median_s": round(statistics.median(cpus), 3),
        "wall_s": [round(w, 3) for w in walls],
        "cpu_s": [round(c, 3) for c in cpus],
    }


def import_profile(tree: Path) -> dict[str, Any]:
    env = env_for("pyc")
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", COUNT],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cli = [ln for ln in r.stderr.splitlines() if ln.rstrip().endswith("| console.cli")]
    cumulative_us = int(cli[-1].split("|")[1]) if cli else None
    heavy = ("prefect", "fastapi", "twilio", "sendgrid", "duckdb", "pandas", "sqlalchemy")
    top = {ln.split("|")[2].strip() for ln in r.stderr.splitlines()[1:] if "|" in ln}
    return {
        "console_cli_cumulative_ms": cumulative_us / 1000 if cumulative_us else None,
        "modules_loaded": int(r.stdout.strip()),
        "heavy_loaded": sorted(h for h in heavy if h in top),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="main", help="git ref of the code before")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--settings", default="pyc,source")
    ap.add_argument("--codes", default="before,after", help="before, after or both")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli-startup.json"))
    args = ap.parse_args()
    settings = args.settings.split(",")

    from console.cli import COMMANDS

    results: dict[str, Any] = {
        "before": args.before,
        "after": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="relance-cli-before-") as scratch:
        codes = args.codes.split(",")
        trees = {"before": Path(scratch), "after": ROOT}
        if "before" in codes:
            unpack(args.before, trees["before"])
        trees = {code: tree for code, tree in trees.items() if code in codes}
        # the same lines for both codes, interleaved, so that load on the shared machine hits both
        lines = [["--help"], *[[name, "--help"] for name, _, _ in COMMANDS]]
        for code, tree in trees.items():
            results[f"imports_{code}"] = import_profile(tree)
            print(code, results[f"imports_{code}"], flush=True)
        for setting in settings:
            if setting == "source":
                for tree in trees.values():
                    clear_cache(tree)
            for line in lines:
                for code, tree in trees.items():
                    row = {"code": code, **measure(tree, line, setting, args.repeat)}
                    results["runs"].append(row)
                    print(
                        f"{code:6} {setting:6} {row['command']:<32} "
                        f"wall {row['wall_median_s']:.2f} s  cpu {row['cpu_median_s']:.2f} s",
                        flush=True,
                    )
    results["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
