"""`mailhelpdesk --help` wall time (median of --runs subprocesses, target < 0.3 s) and the slowest imports
(python -X importtime).

Runs this checkout's package (PYTHONPATH=<repo>) the way the console script does (`from mailhelpdesk.app.cli import
main; main()`), next to the bare interpreter start (`python -c pass`) for reference, and the installed console
script too when there is one. Run: python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import _common as c

ENTRY = "import sys; from mailhelpdesk.app.cli import main; sys.argv[0] = 'mailhelpdesk'; sys.exit(main())"
TARGET = 0.3


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(c.REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("PYTHONPROFILEIMPORTTIME", None)
    return e


def wall(cmd: list[str], runs: int) -> tuple[float, list[float], int]:
    """Median wall time of `runs` runs after one warm-up (page cache, .pyc files)."""
    rc = subprocess.run(cmd, env=env(), cwd=c.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, env=env(), cwd=c.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples, rc


def importtime(code: str) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) per import, from -X importtime."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env(), cwd=c.REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    rows = []
    for line in out.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if found:
            rows.append((int(found.group(1)), int(found.group(2)), len(found.group(3)) // 2, found.group(4)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    py = sys.executable
    cases = [
        ("python -c pass (interpreter alone)", [py, "-c", "pass"]),
        ("python -S -c pass (no site)", [py, "-S", "-c", "pass"]),
        ("mailhelpdesk --help", [py, "-c", ENTRY, "--help"]),
        ("mailhelpdesk run --help", [py, "-c", ENTRY, "run", "--help"]),
        ("mailhelpdesk --version", [py, "-c", ENTRY, "--version"]),
    ]
    script = Path(py).parent / "mailhelpdesk"
    if script.exists():
        cases.append((f"{script} --help (installed console script)", [str(script), "--help"]))
    shim = shutil.which("mailhelpdesk")
    if shim and Path(shim).resolve() != script.resolve():
        cases.append((f"{shim} --help (first on PATH)", [shim, "--help"]))
    results = []
    for name, cmd in cases:
        median, samples, rc = wall(cmd, args.runs)
        results.append((name, median, samples, rc))
        print(f"{name}: {median * 1000:.0f} ms", flush=True)

    rows = importtime("from mailhelpdesk.app.cli import main")
    total = sum(s for s, _, _, _ in rows)
    by_package: dict[str, int] = defaultdict(int)
    for self_us, _, _, module in rows:
        by_package[module.split(".")[0]] += self_us
    ours = [(cum, module) for _, cum, depth, module in rows if module.startswith("mailhelpdesk")]
    top_level = sorted(((cum, module) for _, cum, depth, module in rows if depth <= 1), reverse=True)[:10]

    print()
    print(c.table([[name, f"{m * 1000:.0f} ms", f"{min(s) * 1000:.0f}-{max(s) * 1000:.0f} ms",
                    "" if rc == 0 else f"exit {rc}"] for name, m, s, rc in results],
                  [f"command ({args.runs} runs)", "median", "range", ""]))
    print(f"\ntarget: mailhelpdesk --help < {TARGET * 1000:.0f} ms")
    print(f"\n-X importtime of `from mailhelpdesk.app.cli import main`: {total / 1000:.0f} ms of imports in all")
    print(c.table([[module, f"{cum / 1000:.1f} ms"] for cum, module in top_level],
                  ["slowest imports (top level, cumulative)", "time"]))
    print()
    print(c.table([[pkg, f"{us / 1000:.1f} ms"] for pkg, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]],
                  ["package (self time summed)", "time"]))
    print("\nour modules imported at startup: " + ", ".join(m for _, m in sorted(ours, reverse=True)))
    helpline = next(r for r in results if r[0] == "mailhelpdesk --help")
    base = results[0][1]
    c.emit("startup", {"help_s": round(helpline[1], 4), "python_s": round(base, 4),
                       "run_help_s": round(next(r[1] for r in results if r[0] == "mailhelpdesk run --help"), 4),
                       "version_s": round(next(r[1] for r in results if r[0] == "mailhelpdesk --version"), 4),
                       "console_script_s": round(next((r[1] for r in results if "installed console" in r[0]), 0), 4),
                       "imports_ms": round(total / 1000, 1), "target_s": TARGET,
                       "top_imports": [[m, round(cum / 1000, 1)] for cum, m in top_level[:6]],
                       "our_modules": [m for _, m in sorted(ours, reverse=True)]})


if __name__ == "__main__":
    main()
