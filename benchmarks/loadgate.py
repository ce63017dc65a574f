"""When may a benchmark publish its figures? Only from an idle machine (issue 15 §1).

Every script of `benchmarks/` that writes results goes through one `Gate`:

- **before**: it waits (up to `--wait` seconds, default 300) for the 1-minute load average to fall
  to `--max-load` (default 1.5): a run of our own that just ended leaves the load high for a
  minute or two. The load it starts at is recorded.
- **during**: the CPU *other* processes use, in cores averaged over the run: the machine's busy
  time (`/proc/stat`, idle and iowait excluded) minus the CPU of this script, every process it
  started, and the PostgreSQL server's processes (the database under test). During a run the
  load average says nothing about others: the benchmark itself loads one or both cores.
- **after**: the 1-minute load is recorded.

A run whose starting load was above `--max-load`, or during which others used more than
`--max-others` cores (default 0.3), is **not published**: the script prints its figures, says
why on stderr, writes no result file and exits 3. `--force` publishes anyway and marks the
result `"forced": true`. The record (`Gate.record()`) goes into each result file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MAX_LOAD_1M = 1.5
MAX_OTHERS_CORES = 0.3
WAIT_S = 300
POLL_S = 15


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all CPUs: /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def our_seconds() -> float:
    """CPU seconds used by this script and every process it started (servers, wrk, workers), and by
    the PostgreSQL server's processes (the database under test: command `postgres`)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    database: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(rest[1])
        if stat[stat.index("(") + 1:stat.rindex(")")] == "postgres":
            database.add(int(entry.name))
        # utime, stime, and those of its children it has reaped (gunicorn's workers, by the master)
        cpu[int(entry.name)] = sum(int(x) for x in rest[11:15]) / CLOCK_TICKS
    me = os.getpid()
    mine = os.times()  # this script and the children it reaped
    total = mine.user + mine.system + mine.children_user + mine.children_system
    for pid in cpu:
        if pid == me:
            continue
        walk = pid
        while walk > 1 and walk != me:
            walk = parents.get(walk, 1)
        if walk == me or pid in database:
            total += cpu[pid]
    return total


class OthersCpu:
    """The CPU others used on the machine while a measurement ran (cores, averaged): the machine's
    busy time minus this script's and its children's (and the database server's)."""

    cores = 0.0

    def __enter__(self) -> OthersCpu:
        self.t0, self.busy0, self.ours0 = time.monotonic(), busy_seconds(), our_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.monotonic() - self.t0
        others = (busy_seconds() - self.busy0) - (our_seconds() - self.ours0)
        self.cores = round(max(0.0, others) / seconds, 2) if seconds > 0 else 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-load", type=float, default=MAX_LOAD_1M,
                        help="refuse to publish when the 1-minute load before the run is above this")
    parser.add_argument("--max-others", type=float, default=MAX_OTHERS_CORES,
                        help="refuse to publish when other processes used more cores than this during the run")
    parser.add_argument("--wait", type=float, default=WAIT_S,
                        help="seconds to wait at most for the load to fall to --max-load before starting")
    parser.add_argument("--force", action="store_true", help="publish even from a busy machine (marked forced)")


def log(msg: str) -> None:
    print(f"[loadgate] {msg}", file=sys.stderr, flush=True)


class Gate:
    """One benchmark run's publication rule: see the module docstring."""

    def __init__(self, max_load: float = MAX_LOAD_1M, max_others: float = MAX_OTHERS_CORES,
                 force: bool = False, wait_s: float = WAIT_S) -> None:
        self.max_load, self.max_others, self.force, self.wait_s = max_load, max_others, force, wait_s
        self.load_before = self.load_after = 0.0
        self.others = OthersCpu()
        self.started = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Gate:
        return cls(args.max_load, args.max_others, args.force, args.wait)

    def start(self) -> Gate:
        waited = 0.0
        while load1() > self.max_load and waited < self.wait_s:
            log(f"1-minute load {load1()} > {self.max_load}: waiting for it to fall")
            time.sleep(POLL_S)
            waited += POLL_S
        self.load_before = load1()
        self.others.__enter__()
        self.started = True
        return self

    def finish(self) -> dict[str, Any]:
        assert self.started, "Gate.start() was not called"
        self.others.__exit__()
        self.load_after = load1()
        return self.record()

    def busy(self) -> bool:
        return self.load_before > self.max_load or self.others.cores > self.max_others

    def record(self) -> dict[str, Any]:
        return {"load_1m_before": self.load_before, "load_1m_after": self.load_after,
                "others_cores": self.others.cores, "max_load": self.max_load, "max_others": self.max_others,
                "forced": bool(self.force and self.busy())}

    def allow(self, report: dict[str, Any] | None = None) -> bool:
        """Finish the run; True when its figures may be written (`report` gets the record)."""
        record = self.finish()
        if report is not None:
            report["load_gate"] = record
        if not self.busy():
            log(f"published: load {self.load_before} before, {self.load_after} after; "
                f"others used {self.others.cores} cores")
            return True
        why = (f"the 1-minute load before the run was {self.load_before} (limit {self.max_load}); "
               f"other processes used {self.others.cores} cores during it (limit {self.max_others})")
        if self.force:
            log(f"published with --force although the machine was busy: {why}")
            return True
        log(f"NOT PUBLISHED (exit 3): the machine was busy: {why}. Rerun on an idle machine, or pass --force.")
        return False
