#!/usr/bin/env python3
"""Benchmark: Fava on the ledger tier vs Fava on the flat journal, at seed scale (issue 4).

1. Seeds books through the engine on a fixed clock: `--members` members registered over
   `--days` business days (70 % buy the activation pack, 8 regional partners, some graded),
   `--merchants` stores opened on the second day with a deposit each, `--orders-per-day`
   orders a day (buyers among all members, inactive ones too; stores topped up when short
   of SP), and transfers, payouts (settled or cancelled the next day) and redemptions. Events
   go through `Engine.submit_many` in commits of up to 10,000; each day is closed with
   `Engine.close_days` and the ledger tier extended with `ledger_tier.update` (both timed:
   that is what the engine does as days close once wired). The seeding rate is reported.
2. The ledger tier: a rebuild from scratch (`update(rebuild=True)` after removing it), and
   `ledger_tier.check` (the comparison `verify` adds), timed; files and sizes.
3. In a fresh process per tier, Fava's own app (`fava.application.create_app(load=True)`,
   i.e. `FavaLedger(path)`, the Beancount load with its plugins) on
   - the ledger tier: `BOOKS/ledger/main.beancount`;
   - the flat journal: `BOOKS/main.beancount` (the project's plugin replays every entry), via
     a wrapper beside it that also declares the extension, so the same pages can be timed;
   then the first load, a reload, and the pages: the balance sheet (page and its JSON API),
   an account page (`Liabilities:Holders:SP`: page and `api/account_report`), the journal's
   first page, and the extension's Supply, Holder (first answer, then until the background
   replay is ready) and Audit pages (first answer, then until the background verify is done)
   and a day drill-down; the peak RSS of that process.

    python benchmarks/fava_load.py --members 100000 --merchants 1000 --orders-per-day 5000 --days 30 \
        [--books DIR] [--reuse] [--out benchmarks/results/fava_load.json] [--md benchmarks/results/fava_load.md]

Nothing under ledger_service/ is modified. The books live in a temporary folder removed at
the end unless --books is given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgate  # noqa: E402
from seeding import START, Seeder, log, machine, peak_rss_mib  # noqa: E402  (shared with engine_events.py)

REPO = Path(__file__).resolve().parent.parent


# -- the ledger tier ---------------------------------------------------------------------------------


def ledger_figures(root: Path) -> dict:
    from ledger_service import views
    from ledger_service.views import ledger_tier

    shutil.rmtree(root / "ledger", ignore_errors=True)
    t0 = time.perf_counter()
    written = views.update(root, rebuild=True)
    rebuild_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    faults = ledger_tier.compare(root)
    check_s = time.perf_counter() - t0
    journal_files = list((root / "journal").rglob("*.beancount"))
    ledger_files = list((root / "ledger").rglob("*.beancount"))
    count = lambda files, pattern: sum(p.read_text(encoding="utf-8").count(pattern) for p in files)
    index = root / "ledger" / "holders.sqlite"
    return {
        "holder_index_bytes": index.stat().st_size if index.exists() else 0,
        "rebuild_from_scratch_s": round(rebuild_s, 2), "check_s": round(check_s, 2), "check_faults": len(faults),
        "files_written": len(written),
        "journal": {"files": len(journal_files), "bytes": sum(p.stat().st_size for p in journal_files),
                    "transactions": count(journal_files, '\n  kind: "') - count(journal_files, " price SP ")},
        "ledger": {"files": len(ledger_files), "bytes": sum(p.stat().st_size for p in ledger_files),
                   "transactions": count([p for p in ledger_files if "/months/" in str(p)], '\n  events: "')},
    }


# -- Fava, in a process of its own per tier --------------------------------------------------------------


def measure(path: Path, holder: str, day: str, full: bool = True) -> dict:
    """Run in a fresh process: load Fava on `path`, time its pages, report peak RSS.

    `full`: also time a reload and wait for the extension's background work (the holder
    replay, the verification). Both read the journal whichever tier Fava opened, so the
    flat journal's run skips them (and its reload costs what its first load does).
    """
    from urllib.parse import quote

    from fava.application import create_app
    from fava.util import slugify

    out: dict = {"file": str(path)}
    rss0 = peak_rss_mib()
    t0 = time.perf_counter()
    app = create_app([str(path)], read_only=True, load=True)
    out["first_load_s"] = round(time.perf_counter() - t0, 2)
    ledger = app.config["LEDGERS"].ledgers[0]
    out["entries"] = len(ledger.all_entries)
    out["errors"] = len(ledger.errors)
    out["rss_after_load_mib"] = round(peak_rss_mib(), 1)
    if full:
        t0 = time.perf_counter()
        ledger.load_file()
        out["reload_s"] = round(time.perf_counter() - t0, 2)
    client = app.test_client()
    slug = quote(slugify(ledger.options["title"]))
    pages = {
        "balance_sheet (page)": "balance_sheet/",
        "balance_sheet (api)": "api/balance_sheet",
        "account Liabilities:Holders:SP (page)": "account/Liabilities:Holders:SP/",
        "account Liabilities:Holders:SP (api)": "api/account_report?a=Liabilities:Holders:SP",
        "journal page 1 (api)": "api/journal_page?page=1&order=desc",
        "Supply": "extension/SupplyPage/",
        "Holder (first answer)": f"extension/HolderPage/?holder={holder}",
        "Holder: a store's events, page 3": "extension/HolderPage/?holder=s00001&page=3",
        "Audit (first answer)": "extension/AuditPage/",
        "Audit day drill-down": f"extension/AuditPage/?day={day}&page=2",
    }
    times: dict[str, float] = {}
    sizes: dict[str, int] = {}
    started: dict[str, float] = {}
    for name, url in pages.items():
        t0 = started[name] = time.perf_counter()
        response = client.get(f"/{slug}/{url}")
        times[name] = round((time.perf_counter() - t0) * 1000, 1)
        sizes[name] = len(response.get_data())
        assert response.status_code == 200, (name, response.status_code)
        if name == "Holder (first answer)":
            out["holder_first_answer_has_figures"] = b'id="holder-figures"' in response.get_data()
        if name == "Holder: a store's events, page 3":
            out["store_events_page_has_rows"] = response.get_data().count(b"<td><code>journal/") >= 10
        if name == "Audit (first answer)":
            out["audit_first_answer"] = ("verified" if b'data-ok="true"' in response.get_data()
                                         else "faults" if b'data-ok="false"' in response.get_data() else "running")
    if not full:
        out["pages_ms"] = times
        out["response_bytes"] = sizes
        out["peak_rss_mib"] = round(peak_rss_mib(), 1)
        return out
    # background work, if any was left (none when the holder index and the verification record are current)
    t0 = time.perf_counter()
    while b"holder-building" in client.get(f"/{slug}/extension/HolderPage/?holder={holder}").get_data():
        time.sleep(1)
    out["holder_ready_s"] = round(time.perf_counter() - t0 + times["Holder (first answer)"] / 1000, 2)
    for name, url in (("Holder (again)", f"extension/HolderPage/?holder={holder}"),
                      ("Holder: another member", "extension/HolderPage/?holder=m0050001"),
                      ("Holder: a store", "extension/HolderPage/?holder=s00001")):
        t0 = time.perf_counter()
        client.get(f"/{slug}/{url}")
        times[name] = round((time.perf_counter() - t0) * 1000, 1)
    while b'data-ok="running"' in client.get(f"/{slug}/extension/AuditPage/").get_data():
        time.sleep(1)
    out["verify_ready_s"] = round(time.perf_counter() - started["Audit (first answer)"], 2)
    html = client.get(f"/{slug}/extension/AuditPage/").get_data(as_text=True)
    out["verify_ok"] = 'data-ok="true"' in html
    # second requests (caches warm)
    for name in ("balance_sheet (api)", "account Liabilities:Holders:SP (api)", "Supply"):
        t0 = time.perf_counter()
        client.get(f"/{slug}/{pages[name]}")
        times[name + " again"] = round((time.perf_counter() - t0) * 1000, 1)
    out["pages_ms"] = times
    out["response_bytes"] = sizes
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    out["rss_before_mib"] = round(rss0, 1)
    return out


def recorded_verify(root: Path) -> dict:
    """`ledger-service verify --no-db` once, as an auditor would: it records its result for the Audit page."""
    import os

    exe = Path(sys.executable).with_name("ledger-service")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), "verify", "--books", str(root), "--no-db"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    output = proc.stdout.read()
    return {"wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "exit": os.waitstatus_to_exitcode(status), "tail": output.strip().splitlines()[-1:]}


def journal_wrapper(root: Path) -> Path:
    """The flat journal with the extension declared: main.beancount's text plus one line."""
    from ledger_service.views.ledger_tier import EXTENSION

    text = (root / "main.beancount").read_text(encoding="utf-8")
    first = next(line for line in text.splitlines() if " commodity " in line).split()[0]
    path = root / "fava-journal.beancount"
    path.write_text(text + f'\n{first} custom "fava-extension" "{EXTENSION}"\n', encoding="utf-8")
    return path


def run_measure(path: Path, holder: str, day: str, timeout: float, full: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(path), "--holder", holder, "--day", day]
    if not full:
        cmd.append("--quick")
    log(f"measuring Fava on {path} …")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        log(proc.stderr[-3000:])
        return {"file": str(path), "failed": proc.stderr[-2000:], "wall_s": round(time.perf_counter() - t0, 1)}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.perf_counter() - t0, 1)
    log(f"  {json.dumps(result)[:600]}")
    return result


# -- report -------------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    s, lt = result.get("seed", {}), result["ledger_tier"]
    fl, fj = result["fava"].get("ledger", {}), result["fava"].get("journal", {})
    lines = [
        "## Fava on the ledger tier vs the flat journal (issue 4)",
        "",
        f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['nproc']} CPUs, "
        f"{result['machine']['ram_gib']} GiB), Python {result['machine']['python']}, {result['started'][:10]}.",
        "",
    ]
    if s:
        lines += [
            f"**Books**: {s['members']:,} members ({s['active_members']:,} active), {s['merchants']:,} stores, "
            f"{s['days']} business days, {s['orders_per_day']:,} orders a day: **{s['events']:,} events** "
            f"({', '.join(f'{k} {v:,}' for k, v in s['events_by_kind'].items())}).",
            "",
            f"**Seeding** through `Engine.submit_many` (commits of {s['batch_events']:,} events, SQLite, "
            f"fsync per commit): {s['seconds']:,.0f} s, **{s['events_per_s']:,.0f} events/s**; closing a day "
            f"(`close_days`) median {s['close_ms_median']:,.0f} ms; extending the ledger after a close "
            f"(`ledger_tier.update`) median **{s['ledger_update_ms_median']:,.0f} ms** (max {s['ledger_update_ms_max']:,.0f} ms); "
            f"peak RSS {s['peak_rss_mib']:,.0f} MiB.",
            "",
        ]
    lines += [
        f"**The two tiers**: journal {lt['journal']['transactions']:,} transactions in {lt['journal']['files']} files, "
        f"{lt['journal']['bytes'] / 2**20:,.1f} MiB; ledger {lt['ledger']['transactions']:,} summary transactions in "
        f"{lt['ledger']['files']} files, {lt['ledger']['bytes'] / 2**20:,.2f} MiB; holder index "
        f"{lt.get('holder_index_bytes', 0) / 2**20:,.1f} MiB. Rebuilding the ledger (summaries and holder index) "
        f"from scratch: {lt['rebuild_from_scratch_s']:,.1f} s; `ledger_tier.check` (what `verify` adds): "
        f"{lt['check_s']:,.1f} s, {lt['check_faults']} fault(s).",
        "",
    ]
    v = result.get("verify")
    if v:
        lines += [f"**`ledger-service verify --no-db`** (records its result for the Audit page): {v['wall_s']:,.1f} s, "
                  f"peak RSS {v['peak_rss_mib']:,.0f} MiB, exit {v['exit']}.", ""]
    flags = [(k, fl.get(k)) for k in ("holder_first_answer_has_figures", "store_events_page_has_rows",
                                      "audit_first_answer") if k in fl]
    if flags:
        lines += ["First answers of the extension pages (ledger tier): "
                  + ", ".join(f"{k} = {v}" for k, v in flags) + ".", ""]
    again = result.get("ledger_tier_remeasured")
    if again:
        lines += [
            f"Re-measured on the same books after the summariser's fast path (transactions summed as parsed, "
            f"no per-entry conversion): extending the ledger by one closed day **{again['one_day_update_s']:,.2f} s** "
            f"(the day file parsed by Beancount), a rebuild of all {lt['journal']['files']} days "
            f"{again['rebuild_all_s']:,.1f} s (same bytes), `check` {again['check_s']:,.1f} s.",
            "",
        ]
    lines += [
        "| Fava (`create_app(load=True)`, one process per tier) | ledger tier | flat journal |",
        "|---|---:|---:|",
    ]

    def row(label, key, fmt="{:,.2f}", scale=1.0):
        a, b = fl.get(key), fj.get(key)
        show = lambda v: "—" if v is None else fmt.format(v * scale)
        lines.append(f"| {label} | {show(a)} | {show(b)} |")

    row("entries loaded", "entries", "{:,.0f}")
    row("first load (FavaLedger: parse, plugins, booking) s", "first_load_s")
    row("reload after a change s", "reload_s")
    row("RSS after load MiB", "rss_after_load_mib", "{:,.0f}")
    for name in (fl.get("pages_ms") or fj.get("pages_ms") or {}):
        a = (fl.get("pages_ms") or {}).get(name)
        b = (fj.get("pages_ms") or {}).get(name)
        show = lambda v: "—" if v is None else f"{v:,.0f}"
        lines.append(f"| {name} ms | {show(a)} | {show(b)} |")
    row("Holder page: figures shown, from the first request s", "holder_ready_s", "{:,.2f}")
    row("Audit page: verification shown, from the first request s", "verify_ready_s", "{:,.2f}")
    row("peak RSS of the Fava process MiB", "peak_rss_mib", "{:,.0f}")
    acc = "account Liabilities:Holders:SP (api)"
    a, b = (fl.get("response_bytes") or {}).get(acc), (fj.get("response_bytes") or {}).get(acc)
    if a and b:
        lines.append(f"| account page's JSON (`{acc.split(' (')[0]}`) MiB | {a / 2**20:,.1f} | {b / 2**20:,.0f} |")
    lines += [
        "",
        "The balance sheet and account pages are rendered in the browser from the JSON API (`api/…`), whose "
        "time is the server's work; the account page of `Liabilities:Holders:SP` lists every posting of the "
        "account (Fava does not paginate it): one per holder movement in the journal, one per day and kind in "
        "the ledger. The Holder page reads the ledger's holder index (`ledger/holders.sqlite`, the journal folded "
        "through the last closed day, written as days close, checked by `verify`) and applies the entries booked "
        "since; the Audit page shows the verification `ledger-service verify` recorded (`ledger/verified.json`) "
        "and verifies again in the background only when the books changed since. Both read the books folder, "
        "whichever tier Fava opened. The reload is timed on the ledger only (Fava reloads a changed file whole: "
        "on the flat journal that costs a first load).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=1_000)
    parser.add_argument("--orders-per-day", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--deposit-cny", default="20000")
    parser.add_argument("--injection-cny", default="1000000")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--books", type=Path, default=None, help="keep the books here (default: a temp folder)")
    parser.add_argument("--reuse", action="store_true", help="measure books already at --books (no seeding)")
    parser.add_argument("--skip-journal", action="store_true", help="do not open the flat journal in Fava")
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fava_load.json")
    parser.add_argument("--md", type=Path, default=REPO / "benchmarks/results/fava_load.md")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--holder", default="m0000002", help=argparse.SUPPRESS)
    parser.add_argument("--day", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--journal-full", action="store_true",
                        help="on the flat journal too: time a reload and the background work")
    loadgate.add_arguments(parser)
    args = parser.parse_args()

    if args.measure:
        print(json.dumps(measure(args.measure, args.holder, args.day, full=not args.quick)))
        return

    result = {"benchmark": "fava_load", "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
    gate = loadgate.Gate.from_args(args).start()
    temp = None
    root = args.books
    if root is None:
        temp = Path(tempfile.mkdtemp(prefix="fava-load-"))
        root = temp / "books"
    try:
        if not args.reuse:
            if root.exists():
                raise SystemExit(f"{root} exists: remove it or pass --reuse")
            log(f"seeding {root}: {args.members:,} members, {args.merchants:,} stores, {args.orders_per_day:,} "
                f"orders a day, {args.days} days")
            result["seed"] = Seeder(root, args).run()
            log(f"seeded: {json.dumps(result['seed'])}")
        log("ledger tier: rebuild from scratch and check …")
        result["ledger_tier"] = ledger_figures(root)
        log(f"  {json.dumps(result['ledger_tier'])}")
        log("ledger-service verify --no-db (records its result for the Audit page) …")
        result["verify"] = recorded_verify(root)
        log(f"  {json.dumps(result['verify'])}")
        day = args.day or (START + timedelta(days=min(args.days - 1, 5))).isoformat()
        result["fava"] = {"ledger": run_measure(root / "ledger" / "main.beancount", args.holder, day, args.timeout)}
        if not args.skip_journal:
            result["fava"]["journal"] = run_measure(journal_wrapper(root), args.holder, day, args.timeout,
                                                    full=args.journal_full)
        result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if not gate.allow(result):
            print(markdown(result))
            raise SystemExit(3)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        args.md.write_text(markdown(result))
        log(f"written {args.out} and {args.md}")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
