"""Event-log proofs at 10³ … 10⁶ events (issue 12's note): proof sizes, proof and verification times, disk.

It builds an event log of N synthetic leaves through the view's own storage code
(`views.event_log`: `sqlite_engine` on `BOOKS/ledger/event_log.sqlite`, `Store.frontier`,
`Store.append`, a `checkpoints` row and the checkpoint file per day), fed the way the view's
update feeds it as days close: one day-sized batch of leaf hashes per closed day (default
50,000), each day in its own engine, connection and transaction (as the engine's close hook
runs the update once per close). The engine is not used: the leaves are those of a synthetic
hash chain whose entry of seq s has a canonical text shaped like an order entry (about 1.2 KB,
`canonical_text`), so entry_hash(s) = SHA-256(text(s, entry_hash(s-1))) and the standalone
verifier accepts every proof.

Sizes are cumulative (one log grows 10³ → 10⁴ → …). At each size, against the latest
checkpoint (log_size = N):

- inclusion proofs of `--samples` leaves (random, plus the first and the last): the JSON as
  `ledger-service prove event` writes it (indent 2) and compact, in bytes, median and max;
  the number of stored nodes read;
- the time to produce one: `merkle.inclusion_path` over `Store.node` (the SQLite reads) plus
  the leaf read that the view compares with the entry, on an open connection; the entry's
  journal read (`Log._entry` parses its day file) is not part of it. Opening the log (engine,
  connection, latest checkpoint) is timed apart;
- the time to verify one with `ledger_service.merkle` (SHA-256 of the canonical text, then
  `verify_inclusion` from the proof's hex) and with `verifier/ledger_verify.py`'s functions,
  imported from its path with importlib: the checks `cmd_inclusion` runs on the proof
  already in memory (`check_checkpoint`, `path_nodes`, `check_entry`,
  `root_from_inclusion_path`), and `cmd_inclusion` itself on the proof's file (read and JSON
  parse included; no process start);
- consistency proofs from `--samples`/4 earlier sizes m (random in [1, N), plus every earlier
  checkpoint's size) to N: size, produce and verify times, the same ways;
- `event_log.sqlite` in bytes per leaf, the bytes one more day adds (the log's growth over the
  last size's days, per day, plus its checkpoint file), and the time to append one day.

Each timing is repeated `--runs` times over the same samples; the figure is the median of the
runs' medians. Output: JSON (`--out`) and a markdown table (`--md`).

    python benchmarks/proofs.py --sizes 1000,10000,100000,1000000 --out benchmarks/results/proofs.json \\
        --md benchmarks/results/proofs.md
    python benchmarks/proofs.py --quick      # 10³ and 10⁴, a few seconds
"""

from __future__ import annotations

import argparse
import hashlib
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
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import insert

from ledger_service import merkle
from ledger_service.views import event_log
from ledger_service.views.base import write_if_changed
from ledger_service.views.event_log import CHECKPOINTS, Checkpoint, Store

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import loadgate  # noqa: E402
import seeding  # noqa: E402  (the machine facts, shared)

VERIFIER = REPO / "verifier" / "ledger_verify.py"
START = date(2026, 1, 1)
ZEROS = "0" * 64


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def load_verifier() -> ModuleType:
    """verifier/ledger_verify.py as a module, from its path (it is no package)."""
    spec = importlib.util.spec_from_file_location("ledger_verify", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ledger_verify"] = module
    spec.loader.exec_module(module)
    return module


# -- the synthetic chain --------------------------------------------------------------------------


def canonical_text(seq: int, prev: str, day: date) -> str:
    """A canonical text (README "The hash") shaped like a typical order entry: about 1.2 KB."""
    member, store, order = f"M{seq * 7919 % 1_000_000:07d}", f"S{seq % 10_000:05d}", f"O{seq:010d}"
    sp = f"{(seq % 5000) / 100 + 1:.4f}"
    return "\n".join([
        "ledger-entry-v1",
        "prev:" + prev,
        "type:transaction",
        "date:" + day.isoformat(),
        "flag:*",
        'payee:"order"',
        f'narration:"order {order} at {store} by {member}"',
        "tags:",
        "links:",
        f'meta:amount_cny="{(seq % 9000) / 10 + 10:.2f}"',
        f'meta:burn_sp="{sp}"',
        f'meta:event="E{seq:09d}"',
        'meta:kind="order"',
        f'meta:member="{member}"',
        f'meta:merchant="{store}"',
        f'meta:order_id="{order}"',
        'meta:region="CN-31"',
        'meta:request="' + hashlib.sha256(f"request {seq}".encode()).hexdigest() + '"',
        f'meta:seq="{seq}"',
        f'meta:time="{day.isoformat()}T10:{seq % 60:02d}:{seq * 7 % 60:02d}Z"',
        'meta:value_cny_per_sp="1.2345"',
        f"posting:Liabilities:Holders:SP -{sp} SP",
        f'pmeta:holder="{member}"',
        f"posting:Equity:SP:Burned {sp} SP",
        f'pmeta:merchant="{store}"',
        f"posting:Liabilities:Holders:SV:Locked -{sp} SV",
        f'pmeta:holder="{member}"',
        f"posting:Equity:SV:Converted {sp} SV",
        f"posting:Liabilities:Holders:SV:Active {sp} SV",
        f'pmeta:holder="{member}"',
        f"posting:Equity:SV:Granted -{sp} SV",
        f"posting:Assets:Pool:Backing {(seq % 9000) / 100 + 1:.2f} CNY",
        f"posting:Equity:Pool:Contributions -{(seq % 9000) / 100 + 1:.2f} CNY",
        f'pmeta:merchant="{store}"',
        f"posting:Liabilities:Merchants:Deposits -{(seq % 9000) / 100 + 1:.2f} CNY",
        f'pmeta:merchant="{store}"',
        f"posting:Assets:Merchants:Settlement {(seq % 9000) / 100 + 1:.2f} CNY",
        f'pmeta:merchant="{store}"',
    ])


class Chain:
    """The entry hashes of the synthetic chain (32 bytes each, seq 1 at offset 0)."""

    def __init__(self) -> None:
        self.hashes = bytearray()
        self.days: list[tuple[int, date]] = []  # (last seq, day) of every closed day

    @property
    def size(self) -> int:
        return len(self.hashes) // 32

    def hash_of(self, seq: int) -> bytes:
        return bytes(self.hashes[(seq - 1) * 32: seq * 32])

    def prev_hex(self, seq: int) -> str:
        return self.hash_of(seq - 1).hex() if seq > 1 else ZEROS

    def day_of(self, seq: int) -> date:
        for last, day in self.days:
            if seq <= last:
                return day
        raise ValueError(seq)

    def extend(self, count: int, day: date) -> list[bytes]:
        """Book `count` entries dated `day`; their leaf hashes."""
        leaves = []
        prev = self.prev_hex(self.size + 1)
        for seq in range(self.size + 1, self.size + count + 1):
            digest = hashlib.sha256(canonical_text(seq, prev, day).encode("utf-8")).digest()
            self.hashes += digest
            leaves.append(merkle.leaf_hash(digest))
            prev = digest.hex()
        return leaves


# -- the log, fed as the view's update feeds it -------------------------------------------------------


def append_day(root: Path, day: date, leaves: list[bytes], head: str) -> tuple[Checkpoint, float]:
    """One closed day appended as `event_log._LogUpdate` appends it: a fresh engine, the latest
    checkpoint and the frontier read, the nodes appended, the checkpoint row, one commit, then
    the checkpoint file. Returns the checkpoint and the wall time."""
    started = time.perf_counter()
    engine = event_log.sqlite_engine(event_log.log_path(root), event_log._meta)
    try:
        with engine.connect() as connection, connection.begin():
            store = Store(connection)
            last = store.latest()
            size = last.log_size if last is not None else 0
            frontier = store.append(size, store.frontier(size), leaves)
            size += len(leaves)
            checkpoint = Checkpoint(day, size, head, size, merkle.frontier_root(frontier).hex())
            connection.execute(insert(CHECKPOINTS), [{"day": checkpoint.day, "last_seq": checkpoint.last_seq,
                                                      "head": checkpoint.head, "log_size": checkpoint.log_size,
                                                      "log_root": checkpoint.log_root}])
    finally:
        engine.dispose()
    write_if_changed(event_log.checkpoint_path(root, checkpoint.day), checkpoint.text())
    return checkpoint, time.perf_counter() - started


def log_bytes(root: Path) -> int:
    path = event_log.log_path(root)
    return sum(Path(str(path) + s).stat().st_size for s in ("", "-wal") if Path(str(path) + s).exists())


# -- measurements ------------------------------------------------------------------------------------


class Counting:
    """A `merkle.Nodes` source over a Store that counts its reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    def __call__(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.store.node(level, index)


def median_of_runs(runs: list[list[float]]) -> dict[str, Any]:
    per_run = [statistics.median(r) for r in runs]
    return {"median_us": round(statistics.median(per_run) * 1e6, 1),
            "run_medians_us": [round(x * 1e6, 1) for x in per_run],
            "max_us": round(max(max(r) for r in runs) * 1e6, 1)}


def proof_bytes(proof: dict) -> tuple[int, int]:
    """(as `ledger-service prove` writes it: indent 2 + newline, compact JSON) in UTF-8 bytes."""
    pretty = json.dumps(proof, indent=2, ensure_ascii=False) + "\n"
    compact = json.dumps(proof, separators=(",", ":"), ensure_ascii=False)
    return len(pretty.encode("utf-8")), len(compact.encode("utf-8"))


def inclusion_proofs(store: Store, chain: Chain, cp: Checkpoint, indices: list[int]) -> tuple[list[dict], list[int]]:
    proofs, reads = [], []
    for i in indices:
        seq = i + 1
        nodes = Counting(store)
        path = merkle.inclusion_path(nodes, i, cp.log_size)
        reads.append(nodes.reads)
        digest = chain.hash_of(seq)
        proofs.append({"version": event_log.INCLUSION_VERSION, "event_id": f"E{seq:09d}", "seq": seq,
                       "entry_hash": digest.hex(), "prev": chain.prev_hex(seq),
                       "canonical": canonical_text(seq, chain.prev_hex(seq), chain.day_of(seq)),
                       "leaf_index": i, "checkpoint": cp.to_json(), "path": [p.hex() for p in path]})
    return proofs, reads


def time_produce_inclusion(store: Store, indices: list[int], size: int) -> list[float]:
    out = []
    for i in indices:
        t = time.perf_counter()
        merkle.inclusion_path(store.node, i, size)
        store.node(0, i)  # the leaf the view compares with the entry's hash
        out.append(time.perf_counter() - t)
    return out


def verify_merkle_inclusion(proof: dict) -> bool:
    digest = bytes.fromhex(proof["entry_hash"])
    if hashlib.sha256(proof["canonical"].encode("utf-8")).digest() != digest:
        return False
    cp = proof["checkpoint"]
    return merkle.verify_inclusion(merkle.leaf_hash(digest), proof["leaf_index"], cp["log_size"],
                                   [bytes.fromhex(p) for p in proof["path"]], bytes.fromhex(cp["log_root"]))


def verify_standalone_inclusion(lv: ModuleType, proof: dict) -> bool:
    """The checks `cmd_inclusion` runs, on the proof in memory."""
    cp = proof["checkpoint"]
    lv.require_fields(proof, lv.INCLUSION_FIELDS, "proof")
    lv.check_checkpoint(cp, "checkpoint")
    path = lv.path_nodes(proof["path"], "path")
    entry_hash = lv.check_entry(proof)
    root = lv.root_from_inclusion_path(proof["leaf_index"], cp["log_size"], lv.leaf_hash(entry_hash), path)
    return bool(root.hex() == cp["log_root"])


def timed(fn, items: list) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter()
        ok = fn(item)
        out.append(time.perf_counter() - t)
        if not ok:
            raise AssertionError(f"a proof failed to verify: {str(item)[:200]}")
    return out


def checkpoint_of_size(store: Store, chain: Chain, m: int, day: date) -> dict:
    """A checkpoint object at size m (an earlier checkpoint, or as if one had been taken there)."""
    return Checkpoint(day, m, chain.hash_of(m).hex(), m, merkle.subtree_hash(store.node, 0, m).hex()).to_json()


def measure(root: Path, chain: Chain, lv: ModuleType, samples: int, runs: int, rng: random.Random,
            work: Path) -> dict[str, Any]:
    engine = event_log.open_engine(root)
    assert engine is not None
    out: dict[str, Any] = {}
    with engine.connect() as connection:
        store = Store(connection)
        cp = store.latest()
        assert cp is not None
        n = cp.log_size
        indices = sorted({0, n - 1, *rng.sample(range(n), min(samples, n))})
        # inclusion
        proofs, reads = inclusion_proofs(store, chain, cp, indices)
        sizes = [proof_bytes(p) for p in proofs]
        files = []
        for k, proof in enumerate(proofs):
            file = work / f"inclusion-{k}.json"
            file.write_text(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            files.append(file)
        produce, verify_m, verify_s, verify_cmd = [], [], [], []
        for _ in range(runs):
            produce.append(time_produce_inclusion(store, indices, n))
            verify_m.append(timed(verify_merkle_inclusion, proofs))
            verify_s.append(timed(lambda p: verify_standalone_inclusion(lv, p), proofs))
            verify_cmd.append(timed(lambda f: lv.cmd_inclusion(argparse.Namespace(file=str(f), checkpoint=None, key=None))
                                    .startswith("event "), files))
        canonical = [len(p["canonical"].encode("utf-8")) for p in proofs]
        out["inclusion"] = {
            "samples": len(indices), "path_hashes_median": statistics.median(len(p["path"]) for p in proofs),
            "path_hashes_max": max(len(p["path"]) for p in proofs),
            "canonical_bytes_median": statistics.median(canonical),
            "bytes_median": statistics.median(s[0] for s in sizes), "bytes_max": max(s[0] for s in sizes),
            "compact_bytes_median": statistics.median(s[1] for s in sizes),
            "compact_bytes_max": max(s[1] for s in sizes),
            "node_reads_median": statistics.median(reads), "node_reads_max": max(reads),
            "produce": median_of_runs(produce), "verify_merkle": median_of_runs(verify_m),
            "verify_standalone_functions": median_of_runs(verify_s),
            "verify_standalone_cmd_from_file": median_of_runs(verify_cmd),
        }
        # consistency: from earlier sizes (every earlier checkpoint, and random ones) to n
        earlier = [c for c in store.checkpoints() if c.log_size < n]
        ms = sorted({c.log_size for c in earlier} | set(rng.sample(range(1, n), min(max(samples // 4, 1), n - 1))))
        first_day = {c.log_size: c.day for c in earlier}
        cproofs = []
        creads = []
        for m in ms:
            nodes = Counting(store)
            hashes = merkle.consistency_path(nodes, m, n)
            creads.append(nodes.reads)
            cproofs.append({"version": event_log.CONSISTENCY_VERSION,
                            "from": checkpoint_of_size(store, chain, m, first_day.get(m, START)),
                            "to": cp.to_json(), "path": [p.hex() for p in hashes]})
        csizes = [proof_bytes(p) for p in cproofs]
        cfiles = []
        for k, proof in enumerate(cproofs):
            file = work / f"consistency-{k}.json"
            file.write_text(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            cfiles.append(file)
        cproduce, cverify_m, cverify_s, cverify_cmd = [], [], [], []
        for _ in range(runs):
            cproduce.append(timed(lambda m: bool(merkle.consistency_path(store.node, m, n)), ms))
            cverify_m.append(timed(lambda p: merkle.verify_consistency(
                p["from"]["log_size"], p["to"]["log_size"], bytes.fromhex(p["from"]["log_root"]),
                bytes.fromhex(p["to"]["log_root"]), [bytes.fromhex(h) for h in p["path"]]), cproofs))
            cverify_s.append(timed(lambda p: verify_standalone_consistency(lv, p), cproofs))
            cverify_cmd.append(timed(lambda f: lv.cmd_consistency(argparse.Namespace(file=str(f), trusted_from=None, key=None))
                                     .startswith("the log"), cfiles))
        out["consistency"] = {
            "samples": len(ms), "path_hashes_median": statistics.median(len(p["path"]) for p in cproofs),
            "path_hashes_max": max(len(p["path"]) for p in cproofs),
            "bytes_median": statistics.median(s[0] for s in csizes), "bytes_max": max(s[0] for s in csizes),
            "compact_bytes_median": statistics.median(s[1] for s in csizes),
            "compact_bytes_max": max(s[1] for s in csizes),
            "node_reads_median": statistics.median(creads), "node_reads_max": max(creads),
            "produce": median_of_runs(cproduce), "verify_merkle": median_of_runs(cverify_m),
            "verify_standalone_functions": median_of_runs(cverify_s),
            "verify_standalone_cmd_from_file": median_of_runs(cverify_cmd),
        }
    engine.dispose()
    # opening the log, as each proof request does (`event_log.Log`): engine, connection, latest checkpoint
    opens = []
    for _ in range(runs):
        batch = []
        for _ in range(20):
            t = time.perf_counter()
            with event_log.Log(root) as lg:
                lg.checkpoint()
            batch.append(time.perf_counter() - t)
        opens.append(batch)
    out["open_log"] = median_of_runs(opens)
    for f in work.glob("*.json"):
        f.unlink()
    return out


def verify_standalone_consistency(lv: ModuleType, proof: dict) -> bool:
    """The checks `cmd_consistency` runs for sizes m < n, on the proof in memory."""
    old, new = proof["from"], proof["to"]
    lv.check_checkpoint(old, "from")
    lv.check_checkpoint(new, "to")
    path = lv.path_nodes(proof["path"], "path")
    fr, sr = lv.roots_from_consistency_path(old["log_size"], new["log_size"], bytes.fromhex(old["log_root"]), path)
    return bool(fr.hex() == old["log_root"] and sr.hex() == new["log_root"])


# -- the run -------------------------------------------------------------------------------------------


def machine() -> dict:
    """The machine facts every benchmark records (seeding.machine), with SQLite's version."""
    return seeding.machine() | {"sqlite": sqlite3.sqlite_version}


def git_state() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ledger_service", "verifier", "benchmarks"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "uncommitted_work": bool(dirty)}


def table(results: list[dict], day_size: int) -> str:
    lines = [
        "| events | inclusion proof bytes, median / max (compact) | path hashes max | node reads max "
        "| produce µs | verify µs: merkle / verifier functions / verifier cmd from file "
        "| consistency bytes median / max | consistency produce µs | consistency verify µs: merkle / verifier "
        "| open log µs | log bytes per leaf | disk per day (bytes) | append one day ms (leaves) |",
        "|---:|---|---:|---:|---:|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        i, c = r["inclusion"], r["consistency"]
        lines.append(
            f"| {r['size']:,} | {i['bytes_median']:,.0f} / {i['bytes_max']:,} ({i['compact_bytes_median']:,.0f} / "
            f"{i['compact_bytes_max']:,}) | {i['path_hashes_max']} | {i['node_reads_max']} "
            f"| {i['produce']['median_us']:,.0f} "
            f"| {i['verify_merkle']['median_us']:,.0f} / {i['verify_standalone_functions']['median_us']:,.0f} / "
            f"{i['verify_standalone_cmd_from_file']['median_us']:,.0f} "
            f"| {c['bytes_median']:,.0f} / {c['bytes_max']:,} | {c['produce']['median_us']:,.0f} "
            f"| {c['verify_merkle']['median_us']:,.0f} / {c['verify_standalone_functions']['median_us']:,.0f} "
            f"| {r['open_log']['median_us']:,.0f} | {r['log_bytes_per_leaf']:.1f} "
            f"| {r['disk_per_day_bytes']:,.0f} | {r['append_day_ms_median']:,.1f} ({r['append_day_leaves']:,}) |")
    lines.append("")
    lines.append(f"Days of {day_size:,} leaves (fewer for the first days of the smaller sizes). Timings: median of "
                 "the runs' medians. Disk per day: the log's growth per day over the size's last days, plus one "
                 "checkpoint file.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="comma-separated, increasing")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,10000")
    parser.add_argument("--day-size", type=int, default=50_000, help="leaves per closed day")
    parser.add_argument("--samples", type=int, default=200, help="sampled leaves per size")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--dir", type=Path, default=None, help="books folder (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "proofs.json")
    parser.add_argument("--md", type=Path, default=None, help="markdown table (default: --out with .md)")
    loadgate.add_arguments(parser)
    args = parser.parse_args(argv)
    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(set(sizes)) or sizes[0] < 2:
        parser.error("--sizes: increasing, each ≥ 2")
    md = args.md or args.out.with_suffix(".md")
    lv = load_verifier()
    rng = random.Random(args.seed)
    temp = args.dir is None
    root = Path(tempfile.mkdtemp(prefix="proofs-bench-")) if temp else args.dir
    if not temp and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    work = root / "proofs"
    work.mkdir()
    chain = Chain()
    gate = loadgate.Gate.from_args(args).start()
    report: dict[str, Any] = {"script": "benchmarks/proofs.py", "argv": sys.argv[1:], "started": datetime.now()
                              .isoformat(timespec="seconds"), "machine": machine(), "git": git_state(),
                              "loadavg_start": os.getloadavg(), "day_size": args.day_size, "samples": args.samples,
                              "runs": args.runs, "results": []}
    day = START
    try:
        for size in sizes:
            log(f"growing the log to {size:,} leaves")
            before_bytes, before_days = log_bytes(root), len(chain.days)
            appended: list[tuple[int, float]] = []
            while chain.size < size:
                count = min(args.day_size, size - chain.size)
                leaves = chain.extend(count, day)
                checkpoint, seconds = append_day(root, day, leaves, chain.hash_of(chain.size).hex())
                assert checkpoint.log_size == chain.size
                chain.days.append((chain.size, day))
                appended.append((count, seconds))
                day += timedelta(days=1)
            full = [s for c, s in appended if c == max(c for c, _ in appended)]
            grown, days_added = log_bytes(root) - before_bytes, len(chain.days) - before_days
            leaves_added = sum(c for c, _ in appended)
            cp_files = sorted(event_log.checkpoint_dir(root).glob("*.json"))
            cp_bytes = statistics.mean(p.stat().st_size for p in cp_files)
            log(f"measuring proofs at {size:,} leaves ({len(chain.days)} checkpoints)")
            measured = measure(root, chain, lv, args.samples, args.runs, rng, work)
            result = {
                "size": size, "days": len(chain.days), "loadavg_1m": round(os.getloadavg()[0], 2),
                "log_bytes": log_bytes(root), "log_bytes_per_leaf": round(log_bytes(root) / size, 1),
                "segment_bytes_per_leaf": round(grown / leaves_added, 1),
                "checkpoint_file_bytes": round(cp_bytes, 1),
                "disk_per_day_bytes": round(grown / days_added + cp_bytes),
                "append_day_ms_median": round(statistics.median(full) * 1e3, 1),
                "append_day_ms_max": round(max(full) * 1e3, 1),
                "append_day_leaves": max(c for c, _ in appended),
                "append_us_per_leaf": round(sum(s for _, s in appended) / leaves_added * 1e6, 2),
                **measured,
            }
            report["results"].append(result)
            report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            report["loadavg_end"] = os.getloadavg()
            i = result["inclusion"]
            log(f"{size:,}: inclusion {i['bytes_median']:.0f}/{i['bytes_max']} B, produce "
                f"{i['produce']['median_us']:.0f} µs, verify {i['verify_merkle']['median_us']:.0f} µs; "
                f"{result['log_bytes_per_leaf']} B/leaf, append {result['append_day_ms_median']} ms/day")
    finally:
        if temp:
            shutil.rmtree(root, ignore_errors=True)
    print(table(report["results"], args.day_size))
    if not gate.allow(report):
        return 3
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md.write_text(table(report["results"], args.day_size), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
