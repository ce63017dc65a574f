"""Where the API's time goes under load: py-spy on both workers of `serve --threads 8` under wrk.

    pip install py-spy   # not a dependency of the package; any environment's py-spy will do
    python benchmarks/api_gil_profile.py [--clients 8] [--seconds 15] [--py-spy PATH] [--out FILE]

Builds `api_wrk.py --quick`'s books (SQLite), starts `ledger-service serve --workers 2 --threads
8`, posts `api_wrk.py`'s order mix with wrk for `--seconds` + 8 s, and meanwhile records each
worker with `py-spy record --gil -r 200` (only the thread holding the GIL is sampled). Prints, per
worker, the share of samples in which it held the GIL, and how the GIL-holding samples divide:
the group commit's leader (by part: planning, row writes, commit, repair, journal append, …),
authentication, and the rest (Flask, validation, the response). Writes the same text to --out.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import api_wrk  # noqa: E402

RATE_HZ = 200
LEADER_PARTS = (  # first match wins, in this order
    ("planning (_plan_group: rules, chain, apply)", "_plan_group"),
    ("row writes (_persist)", "_persist ("),
    ("idempotency rows", "store_idempotency"),
    ("database commit", "commit ("),
    ("journal append + fsync", "_append_committed"),
    ("repair + open day", "_repair"),
    ("lock, session, globals", "_book_group_locked"),
    ("after the lock (views)", "_after_group"),
)


def shares(raw: Path, seconds: float) -> list[str]:
    total, leader, auth = 0, 0, 0
    parts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        if "book_group" in stack or "_lead (" in stack:
            leader += n
            parts[next((name for name, key in LEADER_PARTS if key in stack), "other")] += n
        elif "authenticate" in stack or "verify_password" in stack or "lookup (" in stack:
            auth += n
    if not total:
        return [f"{raw.name}: no samples"]
    out = [f"{raw.name}: GIL held in {total / (RATE_HZ * seconds):.0%} of the samples; of those: "
           f"leader {leader / total:.0%}, authentication {auth / total:.0%}, "
           f"the rest (Flask, validation, response) {(total - leader - auth) / total:.0%}"]
    out += [f"    leader: {name:45} {n / total:6.1%}" for name, n in parts.most_common()]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    wrk_args = api_wrk.arguments(["--quick"])
    work = Path(tempfile.mkdtemp(prefix="api-gil-"))
    try:
        root = work / "books"
        books = api_wrk.make_books(root, None, wrk_args)
        api = api_wrk.api_server(root, None, 8, 2, work)
        try:
            binary = api_wrk.ensure_wrk()
            prefix = api_wrk.request_files(work, books, "gil", 2, 40_000, wrk_args)
            env = {**os.environ, "WRK_API_KEY": books["key"], "WRK_REQUESTS_PREFIX": prefix}
            workers = subprocess.run(["pgrep", "-P", str(api.proc.pid)], capture_output=True,
                                     text=True).stdout.split()
            load = subprocess.Popen([binary, "-t2", f"-c{args.clients}", f"-d{int(args.seconds) + 8}s", "-s",
                                     api_wrk.SCRIPT, f"http://127.0.0.1:{api.port}"], env=env,
                                    stdout=subprocess.PIPE, text=True)
            time.sleep(3)
            spies = [subprocess.Popen([args.py_spy, "record", "--gil", "-r", str(RATE_HZ), "-d",
                                       str(int(args.seconds)), "-f", "raw", "-o", str(work / f"worker-{pid}.txt"),
                                       "-p", pid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for pid in workers]
            for spy in spies:
                spy.wait()
            report = load.communicate()[0]
        finally:
            api.stop()
        rate = next((line for line in report.splitlines() if line.startswith("Requests/sec")), "")
        lines = [f"# python benchmarks/api_gil_profile.py --clients {args.clients} --seconds {args.seconds:g}",
                 f"# wrk -c{args.clients} during the samples: {rate.strip()}"]
        for raw in sorted(work.glob("worker-*.txt")):
            lines += shares(raw, args.seconds)
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
