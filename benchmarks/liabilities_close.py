"""The liabilities tree at 10⁶ holders (issue 12's note): close time vs 10³ holders, holder proofs, disk per day.

1. Close time. Sets of books hold a liabilities tree (`views.liabilities`: `Tree` over
   `BOOKS/ledger/liabilities.sqlite`) of each of `--sizes` holders (default 11,000 = 10³ + the
   10⁴ a day touches, so that the day can touch 10⁴ holders the tree holds, and 10⁶; add
   100000 in between to see the growth flatten). Booking 10⁶ holders through the engine would take hours,
   so the trees are built directly: synthetic leaves (figures shaped like the books': base_sp
   of ~68 digits, shares of 34 significant digits, sv_locked 0 or 300.0000, ids `m0000001`)
   set with `Tree.set_leaves` in aligned batches of 2¹⁶, the nodes and leaves of each batch
   written with one executemany into the view's tables (`Tree.flush` writes row by row: hours
   for 3·10⁶ rows; what the day's update flushes is timed with `Tree.flush` itself).

   Then, `--runs` times, each set of books closes one day touching `--touched` holders
   (default 10⁴; `--new-share` of them, default 10 %, new holders appended, the others
   existing holders drawn at random), the sizes one after the other in alternating order
   (A B, B A, …) so all see the same machine. A day is timed as the view's update runs it
   (`liabilities._Update` and `DayFolder.entry`): a fresh engine, connection and transaction,
   `Tree(secret, connection)`; `Tree.set_leaves(figures, order)` (leaf index look-ups, leaf
   hashes, the perfect ancestors, siblings read from SQLite); `Tree.root()` and
   `checkpoint_object`; `Tree.flush(day)`; the commit; the checkpoint file
   (`publish_dated`); wall time, and the process's CPU time next to it. Not timed: folding
   the day's entries into the holders' positions and `leaf_figures` (both O(events) or
   O(touched), whatever the tree's size), and a day that ends an epoch (it rebases every leaf
   with shares, O(N), rare). Figures: the median over the runs, per size, and the ratio of
   each size to the first, of the medians and per run.

2. Holder proofs at the largest size, against the last day's checkpoint: for
   `--proof-samples` holders (random, the first, the middle, the last: the newest), the JSON as
   `ledger-service prove holder` writes it (indent 2) and compact, in bytes; the time to
   produce one (`liabilities.holder_proof`, what the API and the command call: the checkpoint
   file, the engine, the leaf, the path read from SQLite); the time to verify one with
   `merkle_sum.verify_holder_proof` and with `verifier/ledger_verify.py`'s `check_holder_proof`
   (imported from its path, run in the verifier's own exact Decimal context) on the proof in
   memory, and `cmd_holder` on the proof's file (read and strict JSON parse included); and the
   whole command once, `python verifier/ledger_verify.py holder PROOF.json`, in a process of
   its own (wall time, Python's start included; `python -c pass` timed next to it).

3. Disk per closed day, in the largest books: the event log (`views.event_log.Store.append`
   with the leaves' lines, the checkpoint row, as `_LogUpdate` appends a day) grown by
   `--log-days` days of `--events` synthetic leaves (default 3 days of 50,000), the last
   day's growth of `event_log.sqlite` (nodes + leaf_lines) measured; `liabilities.sqlite`'s
   growth per closed day of the runs (the touched leaves rewritten in place, the new ones
   added); and the two checkpoint files of a day (`YYYY-MM-DD.json`,
   `YYYY-MM-DD.liabilities.json`). SQLite files are measured after their WAL is checkpointed
   into them.

The 1-minute load average is recorded before, between the runs and after. Publication follows
`benchmarks/loadgate.py`: a run that started above `--max-load` (default 1.5), or during which
other processes used more than `--max-others` cores (default 0.3), is not written to
`--out`/`--md` (exit 3) unless `--force`. `--quick` (10³ + 2·10³
vs 10⁵ holders, 2,000 touched, 10,000 events, 2 runs) writes to `results/liabilities_close_quick.*`.

    python benchmarks/liabilities_close.py --out benchmarks/results/liabilities_close.json
    python benchmarks/liabilities_close.py --quick --force     # a check that it works, about a minute
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, Inexact, Rounded, localcontext
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import insert

from ledger_service import merkle
from ledger_service import merkle_sum as ms
from ledger_service.amounts import INDEX_CONTEXT
from ledger_service.views import event_log, liabilities
from ledger_service.views.base import publish_dated, sqlite_engine, write_if_changed
from ledger_service.views.event_log import CHECKPOINTS, Checkpoint, Store
from ledger_service.views.liabilities import LEAVES, NODES, POSITION, Tree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import loadgate  # noqa: E402
import seeding  # noqa: E402  (the machine facts, shared)

VERIFIER = REPO / "verifier" / "ledger_verify.py"
START = date(2026, 1, 1)
BATCH_LEVEL = 16  # the build sets leaves in aligned batches of 2**16
LOCKED = Decimal("300.0000")
NO_SV = Decimal("0.0000")
LINES_PER_ENTRY = 24  # a demo-like day file: 1,179,991 lines for 50,000 entries (BENCHMARKS.md)


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def load_verifier() -> ModuleType:
    """verifier/ledger_verify.py as a module, from its path (it is no package)."""
    spec = importlib.util.spec_from_file_location("ledger_verify", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ledger_verify"] = module
    spec.loader.exec_module(module)
    return module


def holder_id(i: int) -> str:
    return f"m{i:07d}"


def sqlite_bytes(path: Path) -> int:
    """A SQLite file's bytes once its WAL is checkpointed into it (no connection may be open)."""
    with sqlite3.connect(path) as c:
        c.execute("pragma wal_checkpoint(truncate)")
    return sum(Path(str(path) + s).stat().st_size for s in ("", "-wal") if Path(str(path) + s).exists())


# -- the books' position: indices of 34 significant digits, moved by each day's release ------------------------


@dataclass
class Position:
    """What `checkpoint_object` reads of the books' globals (`g`): the indices and the control balances."""

    epoch: int
    sp_index: Decimal
    sv_index: Decimal
    control: dict[str, Decimal]

    def balance(self, account: str) -> Decimal:
        return -self.control[account]  # liabilities: credit balances

    def release(self, rng: random.Random) -> None:
        self.sp_index = INDEX_CONTEXT.add(self.sp_index, INDEX_CONTEXT.divide(Decimal(rng.randrange(1, 10**6)),
                                                                              Decimal(10**8) * 3))
        self.sv_index = INDEX_CONTEXT.multiply(self.sv_index, Decimal("0.9993731"))

    def control_from(self, root: ms.Node) -> None:
        """Synthetic control accounts: the totals rounded up to 0.0001 (inside the residue rule; the
        holder check does not read them)."""
        totals = (root.sp(self.sp_index), ms.CTX.multiply(root.shares, self.sv_index), root.sv_locked)
        self.control = {account: total.quantize(ms.QUANTUM, rounding=ROUND_CEILING, context=ms.CTX)
                        for account, total in zip(liabilities.CONTROL, totals, strict=True)}


def figures(rng: random.Random, g: Position) -> tuple[Decimal, Decimal, Decimal]:
    """(base_sp, shares, sv_locked) of a holder settled at some past SP index ≤ g.sp_index, shaped like
    `liabilities.leaf_figures` gives: base_sp = sp_exact − shares × sp_ckpt (exact, ~68 digits)."""
    roll = rng.random()
    locked = LOCKED if roll < 0.3 else NO_SV
    if roll < 0.25:  # registered, no pack: no shares
        return Decimal("0E-35"), Decimal(0), locked
    sv = Decimal(rng.randrange(1, 10**8)).scaleb(-4)
    shares = INDEX_CONTEXT.divide(sv, g.sv_index)
    sp_ckpt = INDEX_CONTEXT.multiply(g.sp_index, Decimal(repr(rng.random())))
    sp_exact = INDEX_CONTEXT.add(Decimal(rng.randrange(0, 10**7)).scaleb(-4),
                                 INDEX_CONTEXT.multiply(shares, INDEX_CONTEXT.multiply(sp_ckpt, Decimal("0.37"))))
    return ms.CTX.subtract(sp_exact, ms.CTX.multiply(shares, sp_ckpt)), shares, locked


# -- building a tree of N holders ----------------------------------------------------------------------------


def build(root: Path, size: int, g: Position, rng: random.Random, day: date) -> dict[str, Any]:
    """Books whose liabilities tree holds `size` holders (leaf i: holder_id(i)), standing at `day`."""
    started, cpu = time.perf_counter(), time.process_time()
    secret = liabilities.read_secret(root, create=True)
    assert secret is not None
    engine = sqlite_engine(liabilities.db_path(root), liabilities._meta)
    tree = Tree(secret)  # in memory: the build's leaves are all new, no look-up in SQLite
    sums = [Decimal(0)] * 3
    batch = 1 << BATCH_LEVEL
    with engine.connect() as c, c.begin():
        for start in range(0, size, batch):
            ids = [holder_id(i) for i in range(start, min(start + batch, size))]
            figs = {h: figures(rng, g) for h in ids}
            for f in figs.values():
                sums = [ms.CTX.add(a, b) for a, b in zip(sums, f, strict=True)]
            tree.set_leaves(figs, ids)
            c.execute(insert(NODES), [{"level": lv, "idx": i, "hash": nd.hash, "base_sp": nd.base_sp,
                                       "shares": nd.shares, "sv_locked": nd.sv_locked}
                                      for (lv, i), nd in ((k, tree.nodes[k]) for k in sorted(tree.dirty_nodes))])
            c.execute(insert(LEAVES), [{"holder_id": h, "leaf_index": tree.index[h], "base_sp": f[0],
                                        "shares": f[1], "sv_locked": f[2]} for h, f in tree.leaf_of.items()])
            # the next batches need only the perfect subtrees at or above the batch's level
            tree.nodes = {k: v for k, v in tree.nodes.items() if k[0] >= BATCH_LEVEL}
            tree.index, tree.leaf_of = {}, {}
            tree.dirty_nodes, tree.dirty_leaves = set(), set()
            if size > batch:
                log(f"  {min(start + batch, size):,} / {size:,} leaves")
        c.execute(insert(POSITION), [{"id": 1, "day": day}])
    with engine.connect() as c:  # the stored tree's root carries exactly the sums of the leaves generated
        top = Tree(secret, c).root()
        assert (top.base_sp, top.shares, top.sv_locked) == tuple(sums), "the stored tree lost leaves"
        assert Tree(secret, c).size == size
    engine.dispose()
    g.control_from(top)
    head = "0" * 63 + "1"
    publish_dated(root, {day: (liabilities.checkpoint_path(root, day), liabilities._text(
        liabilities.checkpoint_object(day, size, top, g, head, log_root=head)))}, None)
    return {"holders": size, "build_s": round(time.perf_counter() - started, 1),
            "build_cpu_s": round(time.process_time() - cpu, 1),
            "db_bytes": sqlite_bytes(liabilities.db_path(root))}


# -- one closed day, as the view's update runs it ----------------------------------------------------------------


@dataclass
class Books:
    root: Path
    size: int  # holders in the tree
    g: Position
    day: date
    head: str
    log_root: str


def day_of(books: Books, touched: int, new_share: float, rng: random.Random) -> tuple[dict, list[str]]:
    """The day's touched holders, in order of first appearance, and their leaf figures."""
    new = round(touched * new_share)
    existing = rng.sample(range(books.size), touched - new)
    ids = [holder_id(i) for i in existing] + [holder_id(books.size + k) for k in range(new)]
    rng.shuffle(ids)
    return {h: figures(rng, books.g) for h in ids}, ids


def close_day(books: Books, figs: dict, order: list[str], secret: bytes) -> dict[str, Any]:
    """One day through `Tree` as `liabilities._Update` drives it; the parts timed (seconds)."""
    db = liabilities.db_path(books.root)
    books.day += timedelta(days=1)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    engine = sqlite_engine(db, liabilities._meta)
    connection = engine.connect()
    transaction = connection.begin()
    tree = Tree(secret, connection)
    t1 = time.perf_counter()
    written = tree.set_leaves(figs, order)
    t2 = time.perf_counter()
    top = tree.root()
    books.g.control_from(top)
    obj = liabilities.checkpoint_object(books.day, tree.size, top, books.g, books.head)
    t3 = time.perf_counter()
    read_only = len(set(tree.nodes) - tree.dirty_nodes)  # nodes read from SQLite and not rewritten
    nodes_written = len(tree.dirty_nodes)
    tree.flush(books.day)
    t4 = time.perf_counter()
    transaction.commit()
    t5 = time.perf_counter()
    obj["log_root"] = books.log_root
    publish_dated(books.root, {books.day: (liabilities.checkpoint_path(books.root, books.day),
                                           liabilities._text(obj))}, None)
    t6 = time.perf_counter()
    cpu = time.process_time() - cpu0
    connection.close()
    engine.dispose()
    books.size = tree.size
    return {"total_s": t6 - t0, "cpu_s": cpu, "open_s": t1 - t0, "set_leaves_s": t2 - t1, "root_s": t3 - t2,
            "flush_s": t4 - t3, "commit_s": t5 - t4, "file_s": t6 - t5, "leaves": written,
            "nodes_written": nodes_written, "nodes_read_not_written": read_only, "holders_after": tree.size}


# -- the event log: days of synthetic leaves appended as `_LogUpdate` appends them -------------------------------


def append_log_day(root: Path, day: date, leaves: list[bytes], lines: list[int]) -> tuple[Checkpoint, float]:
    started = time.perf_counter()
    engine = sqlite_engine(event_log.log_path(root), event_log._meta)
    try:
        with engine.connect() as connection, connection.begin():
            store = Store(connection)
            last = store.latest()
            size = last.log_size if last is not None else 0
            frontier = store.append(size, store.frontier(size), leaves, lines)
            size += len(leaves)
            checkpoint = Checkpoint(day, size, leaves[-1].hex(), size, merkle.frontier_root(frontier).hex())
            connection.execute(insert(CHECKPOINTS), [{"day": checkpoint.day, "last_seq": checkpoint.last_seq,
                                                      "head": checkpoint.head, "log_size": checkpoint.log_size,
                                                      "log_root": checkpoint.log_root}])
    finally:
        engine.dispose()
    write_if_changed(event_log.checkpoint_path(root, day), checkpoint.text())
    return checkpoint, time.perf_counter() - started


def event_log_days(root: Path, days: int, events: int, rng: random.Random) -> tuple[dict[str, Any], Checkpoint]:
    """`days` days of `events` leaves; the last day's growth of event_log.sqlite (nodes + leaf_lines)."""
    out: dict[str, Any] = {"days": days, "events_per_day": events, "append_s": []}
    before = 0
    checkpoint = None
    for k in range(days):
        leaves = [merkle.leaf_hash(rng.randbytes(32)) for _ in range(events)]
        line, lines = 1, []
        for _ in range(events):
            lines.append(line)
            line += rng.randint(LINES_PER_ENTRY - 10, LINES_PER_ENTRY + 10)
        day = START - timedelta(days=days - k)
        if k == days - 1:
            before = sqlite_bytes(event_log.log_path(root)) if event_log.log_path(root).exists() else 0
        checkpoint, seconds = append_log_day(root, day, leaves, lines)
        out["append_s"].append(round(seconds, 3))
    assert checkpoint is not None
    out["log_bytes"] = sqlite_bytes(event_log.log_path(root))
    out["last_day_growth_bytes"] = out["log_bytes"] - before
    out["checkpoint_file_bytes"] = event_log.checkpoint_path(root, checkpoint.day).stat().st_size
    return out, checkpoint


# -- holder proofs -------------------------------------------------------------------------------------------


def proof_bytes(proof: dict) -> tuple[int, int]:
    pretty = json.dumps(proof, indent=2, ensure_ascii=False) + "\n"  # as `ledger-service prove` writes it
    return len(pretty.encode("utf-8")), len(json.dumps(proof, separators=(",", ":"), ensure_ascii=False).encode())


def in_verifier_context(fn: Any) -> Any:
    """Run `fn` in the standalone verifier's Decimal context (as its main() does): exact, 400 digits."""
    with localcontext() as context:
        context.prec = 400
        context.traps[Inexact] = context.traps[Rounded] = True
        return fn()


def timed_us(fn: Any, items: list, runs: int) -> dict[str, Any]:
    per_run, everything = [], []
    for _ in range(runs):
        times = []
        for item in items:
            t = time.perf_counter()
            fn(item)
            times.append(time.perf_counter() - t)
        per_run.append(statistics.median(times))
        everything += times
    return {"median_us": round(statistics.median(per_run) * 1e6, 1),
            "run_medians_us": [round(x * 1e6, 1) for x in per_run], "max_us": round(max(everything) * 1e6, 1)}


def holder_proofs(books: Books, lv: ModuleType, samples: int, runs: int, rng: random.Random,
                  work: Path) -> dict[str, Any]:
    ids = sorted({holder_id(0), holder_id(books.size - 1), holder_id(books.size // 2),
                  *(holder_id(i) for i in rng.sample(range(books.size), min(samples, books.size)))})
    proofs = [liabilities.holder_proof(books.root, h) for h in ids]
    files = []
    for k, proof in enumerate(proofs):
        ms.verify_holder_proof(proof)
        in_verifier_context(lambda p=proof: lv.check_holder_proof(p))
        file = work / f"holder-{k}.json"
        file.write_text(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        files.append(file)
    sizes = [proof_bytes(p) for p in proofs]
    # the whole command once, in a process of its own, on the median-sized proof; Python's start next to it
    command = [sys.executable, str(VERIFIER), "holder", str(files[len(files) // 2])]
    t = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    command_s = time.perf_counter() - t
    assert done.returncode == 0 and done.stdout.startswith("OK: "), (done.returncode, done.stdout, done.stderr)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python_s = time.perf_counter() - t

    def cmd(file: Path) -> None:
        out = in_verifier_context(lambda: lv.cmd_holder(argparse.Namespace(file=str(file), liabilities=None, key=None)))
        assert out.startswith("holder ")

    result = {
        "holders": books.size, "samples": len(ids),
        "path_nodes_median": statistics.median(len(p["path"]) for p in proofs),
        "path_nodes_max": max(len(p["path"]) for p in proofs),
        "bytes_median": statistics.median(s[0] for s in sizes), "bytes_max": max(s[0] for s in sizes),
        "compact_bytes_median": statistics.median(s[1] for s in sizes),
        "compact_bytes_max": max(s[1] for s in sizes),
        "produce": timed_us(lambda h: liabilities.holder_proof(books.root, h), ids, runs),
        "verify_merkle_sum": timed_us(ms.verify_holder_proof, proofs, runs),
        "verify_standalone_function": timed_us(lambda p: in_verifier_context(lambda: lv.check_holder_proof(p)),
                                               proofs, runs),
        "verify_standalone_cmd_from_file": timed_us(cmd, files, runs),
        "verify_standalone_process_ms": round(command_s * 1e3, 1),
        "python_start_ms": round(python_s * 1e3, 1),
    }
    for f in files:
        f.unlink()
    return result


# -- the run -------------------------------------------------------------------------------------------------


def git_state() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ledger_service", "verifier", "benchmarks"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "uncommitted_work": bool(dirty)}


def summarize(days: list[dict]) -> dict[str, Any]:
    keys = ("total_s", "cpu_s", "open_s", "set_leaves_s", "root_s", "flush_s", "commit_s", "file_s")
    out: dict[str, Any] = {k[:-2] + "_ms": round(statistics.median(d[k] for d in days) * 1e3, 1) for k in keys}
    out["total_ms_runs"] = [round(d["total_s"] * 1e3, 1) for d in days]
    for k in ("leaves", "nodes_written", "nodes_read_not_written"):
        out[k] = statistics.median(d[k] for d in days)
    return out


def runs(values: list[float], spec: str) -> str:
    return ", ".join(format(x, spec) for x in values)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "–"


def table(report: dict) -> str:
    sizes = report["close"]["sizes"]
    first, last = sizes[0], sizes[-1]
    per_run = report["close"]["ratio_to_first"][-1]["per_run"]
    lines = [
        f"| close of one day, {report['touched']:,} holders touched | "
        + " | ".join(f"{s['holders']:,} holders" for s in sizes) + f" | {last['holders']:,} / {first['holders']:,} |",
        "|---|" + "---:|" * (len(sizes) + 1),
        "| **total, median ms** (runs) | " + " | ".join(
            f"**{s['total_ms']:,.0f}** ({runs(s['total_ms_runs'], ',.0f')})" for s in sizes)
        + f" | **{ratio(last['total_ms'], first['total_ms'])}** (per run {runs(per_run, '.2f')}) |",
    ]
    for part, name, spec in (("cpu_ms", "CPU time of the process, median ms", ",.0f"),
                             ("open_ms", "open: engine, connection, `Tree`", ",.1f"),
                             ("set_leaves_ms", "`Tree.set_leaves`", ",.1f"),
                             ("root_ms", "`Tree.root` + checkpoint object", ",.1f"),
                             ("flush_ms", "`Tree.flush`", ",.1f"), ("commit_ms", "commit", ",.1f"),
                             ("file_ms", "checkpoint file", ",.1f"),
                             ("nodes_written", "nodes written (leaves included)", ",.0f"),
                             ("nodes_read_not_written", "nodes read from SQLite, not rewritten", ",.0f")):
        lines.append(f"| {name} | " + " | ".join(format(s[part], spec) for s in sizes)
                     + f" | {ratio(last[part], first[part])} |")
    p, d = report["holder_proof"], report["disk"]
    lines += [
        "",
        f"| holder proof at {p['holders']:,} holders | |",
        "|---|---:|",
        f"| JSON bytes, median / max (compact) | {p['bytes_median']:,.0f} / {p['bytes_max']:,} "
        f"({p['compact_bytes_median']:,.0f} / {p['compact_bytes_max']:,}) |",
        f"| path nodes, max | {p['path_nodes_max']} |",
        f"| produce (`liabilities.holder_proof`), median µs | {p['produce']['median_us']:,.0f} |",
        f"| verify, `merkle_sum.verify_holder_proof`, median µs | {p['verify_merkle_sum']['median_us']:,.0f} |",
        f"| verify, `ledger_verify.check_holder_proof` in process, median µs "
        f"| {p['verify_standalone_function']['median_us']:,.0f} |",
        f"| verify, `ledger_verify.cmd_holder` on the file, median µs "
        f"| {p['verify_standalone_cmd_from_file']['median_us']:,.0f} |",
        f"| `python verifier/ledger_verify.py holder PROOF.json`, once, ms (`python -c pass`: "
        f"{p['python_start_ms']:,.0f}) | {p['verify_standalone_process_ms']:,.0f} |",
        "",
        f"| disk per closed day ({d['events_per_day']:,} events, {report['touched']:,} holders touched, "
        f"{d['new_holders_per_day']:,} new; {d['holders']:,} holders) | bytes |",
        "|---|---:|",
        f"| `event_log.sqlite` (nodes + leaf_lines) | {d['event_log_bytes']:,} |",
        f"| `liabilities.sqlite` (median growth per day) | {d['liabilities_bytes']:,} |",
        f"| `checkpoints/YYYY-MM-DD.json` | {d['event_log_checkpoint_file_bytes']:,} |",
        f"| `checkpoints/YYYY-MM-DD.liabilities.json` | {d['liabilities_checkpoint_file_bytes']:,} |",
        f"| **total** | **{d['total_bytes']:,}** |",
        "",
        "Trees built in " + ", ".join(f"{b['build_s']:,.1f} s" for b in report["build"].values())
        + f" (liabilities.sqlite {d['liabilities_db_bytes']:,} bytes at {d['holders']:,} holders after the runs). "
        f"Load average (1 min): {report['loadavg_start'][0]:.2f} before, {report['loadavg_end'][0]:.2f} after, "
        f"max {report['loadavg_max_1m']:.2f} during the run.",
    ]
    return "\n".join(lines) + "\n"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="11000,1000000",
                        help="holders of each tree, increasing (the first: 10³ + the touched; ratios are to it)")
    parser.add_argument("--touched", type=int, default=10_000, help="holders touched per closed day")
    parser.add_argument("--new-share", type=float, default=0.1, help="share of the touched that are new holders")
    parser.add_argument("--runs", type=int, default=5, help="closed days per size")
    parser.add_argument("--events", type=int, default=50_000, help="event-log leaves per closed day")
    parser.add_argument("--log-days", type=int, default=3, help="event-log days appended (the last one measured)")
    parser.add_argument("--proof-samples", type=int, default=100)
    parser.add_argument("--proof-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="3,000 vs 100,000 holders, 2,000 touched, 2 runs")
    loadgate.add_arguments(parser)
    parser.add_argument("--dir", type=Path, default=None, help="books folder (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default results/liabilities_close.json)")
    parser.add_argument("--md", type=Path, default=None, help="markdown table (default: --out with .md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.touched, args.runs, args.events = "3000,100000", 2_000, 2, 10_000
        args.proof_samples, args.proof_runs = 30, 3
    args.sizes = [int(x) for x in args.sizes.split(",")]
    if args.sizes != sorted(set(args.sizes)) or len(args.sizes) < 2:
        parser.error("--sizes: two or more, increasing")
    name = "liabilities_close_quick.json" if args.quick else "liabilities_close.json"
    args.out = args.out or REPO / "benchmarks" / "results" / name
    args.md = args.md or args.out.with_suffix(".md")
    if not 0 <= args.new_share <= 1 or args.touched * (1 - args.new_share) > args.sizes[0]:
        parser.error("--sizes: the first must hold the day's touched existing holders")
    return args


def run(args: argparse.Namespace, work: Path, report: dict, loads: list[float]) -> None:
    rng = random.Random(args.seed)
    lv = load_verifier()
    all_books: dict[int, Books] = {}
    largest = args.sizes[-1]
    log(f"event log: {args.log_days} days of {args.events:,} leaves")
    report["event_log"], cp = event_log_days(work / f"n{largest}", args.log_days, args.events, rng)
    for size in args.sizes:
        root = work / f"n{size}"
        g = Position(0, Decimal("0.03307763437977135819847935696743286"),
                     Decimal("0.9468870376546451517095911358733950"), {})
        log(f"building a tree of {size:,} holders")
        report["build"][str(size)] = build(root, size, g, rng, START)
        all_books[size] = Books(root, size, g, START, cp.head, cp.log_root)
        loads.append(load1())
    days: dict[int, list[dict]] = {size: [] for size in args.sizes}
    secrets = {n: liabilities.read_secret(b.root) for n, b in all_books.items()}
    for r in range(args.runs):
        for size in args.sizes if r % 2 == 0 else args.sizes[::-1]:
            books = all_books[size]
            books.g.release(rng)
            figs, order = day_of(books, args.touched, args.new_share, rng)
            before = sqlite_bytes(liabilities.db_path(books.root))
            secret = secrets[size]
            assert secret is not None
            result = close_day(books, figs, order, secret)
            result["db_growth_bytes"] = sqlite_bytes(liabilities.db_path(books.root)) - before
            result["loadavg_1m"] = load1()
            loads.append(result["loadavg_1m"])
            days[size].append(result)
            log(f"run {r + 1}/{args.runs}, {size:,} holders ({books.size:,} after the day): "
                f"{result['total_s'] * 1e3:,.0f} ms (set_leaves {result['set_leaves_s'] * 1e3:,.0f}, "
                f"flush {result['flush_s'] * 1e3:,.0f}; CPU {result['cpu_s'] * 1e3:,.0f}); load {result['loadavg_1m']}")
    sizes = [summarize(days[size]) | {"holders": size} for size in args.sizes]
    base = days[args.sizes[0]]
    report["close"] = {"sizes": sizes, "days": {str(k): v for k, v in days.items()}, "ratio_to_first": [
        {"holders": s["holders"], "of_medians": round(s["total_ms"] / sizes[0]["total_ms"], 3),
         "cpu_of_medians": round(s["cpu_ms"] / sizes[0]["cpu_ms"], 3),
         "per_run": [round(a["total_s"] / b["total_s"], 3) for a, b in zip(days[s["holders"]], base, strict=True)]}
        for s in sizes]}
    books = all_books[largest]
    log(f"holder proofs at {books.size:,} holders")
    proofs_dir = work / "proofs"
    proofs_dir.mkdir()
    report["holder_proof"] = holder_proofs(books, lv, args.proof_samples, args.proof_runs, rng, proofs_dir)
    growth = [d["db_growth_bytes"] for d in days[largest]]
    disk = {"holders": largest, "events_per_day": args.events,
            "new_holders_per_day": round(args.touched * args.new_share),
            "event_log_bytes": report["event_log"]["last_day_growth_bytes"],
            "liabilities_bytes": round(statistics.median(growth)), "liabilities_growth_runs": growth,
            "event_log_checkpoint_file_bytes": report["event_log"]["checkpoint_file_bytes"],
            "liabilities_checkpoint_file_bytes": liabilities.checkpoint_path(books.root, books.day).stat().st_size,
            "liabilities_db_bytes": sqlite_bytes(liabilities.db_path(books.root))}
    disk["total_bytes"] = (disk["event_log_bytes"] + disk["liabilities_bytes"]
                           + disk["event_log_checkpoint_file_bytes"] + disk["liabilities_checkpoint_file_bytes"])
    report["disk"] = disk


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    gate = loadgate.Gate.from_args(args).start()
    start_load = gate.load_before
    temp = args.dir is None
    work = Path(tempfile.mkdtemp(prefix="liabilities-bench-")) if temp else args.dir
    if not temp and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "script": "benchmarks/liabilities_close.py", "argv": sys.argv[1:] if argv is None else argv,
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": seeding.machine() | {"sqlite": sqlite3.sqlite_version}, "git": git_state(),
        "loadavg_start": os.getloadavg(), "touched": args.touched, "new_share": args.new_share, "runs": args.runs,
        "seed": args.seed, "build": {}}
    loads = [start_load]
    try:
        run(args, work, report, loads)
    finally:
        if temp:
            shutil.rmtree(work, ignore_errors=True)
    report["loadavg_end"] = os.getloadavg()
    loads.append(load1())
    report["loadavg_max_1m"] = max(loads)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["cpu_s"] = round(time.process_time(), 1)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = table(report)
    print(text)
    print(f"wall {report['wall_s']:,.1f} s, CPU {report['cpu_s']:,.1f} s, peak RSS {report['peak_rss_mib']:,.0f} MiB")
    if not gate.allow(report):
        return 3
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    args.md.write_text(text, encoding="utf-8")
    log(f"wrote {args.out} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
