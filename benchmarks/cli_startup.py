"""How fast the command line answers: ``tuneall --help`` and ``import tuneall`` against ``python -c "import optuna"``
(a library a researcher already waits for), measured in the same run, interleaved, as fresh processes.

The goal (layout issue): ``tuneall --help`` under 0.5 s; it must not import torch, Ray or pandas. Also recorded: the
peak resident memory of each process (``ru_maxrss`` of the child), and whether the heavy libraries were imported.

    python benchmarks/cli_startup.py            # 15 rounds
    python benchmarks/cli_startup.py --quick    # 5 rounds
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import _common as C

HEAVY = ("torch", "ray", "pandas")


def _run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one fresh process (wait4 gives that child's own rusage)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=C.ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def main():
    args = C.parse_args(__doc__.splitlines()[0])
    rounds = 5 if args.quick else 15
    exe = shutil.which("tuneall") or f"{sys.executable} -m tuneall.cli"
    cases = {
        "tuneall --help": [*exe.split(), "--help"],
        "import tuneall": [sys.executable, "-c", "import tuneall"],
        "import optuna": [sys.executable, "-c", "import optuna"],
    }
    for argv in cases.values():  # warm the file cache: every case starts from the same state
        _run(argv)
    times = {k: [] for k in cases}
    mem = {k: [] for k in cases}
    for _ in range(rounds):
        for name, argv in cases.items():  # interleaved: load from elsewhere hits every case alike
            wall, rss = _run(argv)
            times[name].append(wall)
            mem[name].append(rss)
    probe = ("import sys, tuneall, tuneall.cli; tuneall.cli.build_parser(); "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=C.ROOT).stdout.strip()
    base = C.median(times["import optuna"])
    rows = [
        C.row("tuneall --help wall time", C.median(times["tuneall --help"]), "python -c 'import optuna'", base, "s",
              goal="< 0.5 s", met=C.median(times["tuneall --help"]) < 0.5),
        C.row("import tuneall wall time", C.median(times["import tuneall"]), "python -c 'import optuna'", base, "s"),
        C.row("tuneall --help peak RSS", C.median(mem["tuneall --help"]), "python -c 'import optuna'",
              C.median(mem["import optuna"]), "MB"),
    ]
    C.print_rows(rows)
    print(f"  heavy modules imported by `import tuneall` + building the parser: {imported or 'none'}")
    C.write_result("cli_startup", {**C.header("cli_startup", args.quick), "rounds": rounds, "times_s": times,
                                   "peak_rss_mb": mem, "heavy_imported": imported.split(",") if imported else [],
                                   "rows": rows})


if __name__ == "__main__":
    main()
