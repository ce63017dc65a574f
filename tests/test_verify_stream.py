"""verify's journal stream (`audit.stream`, `verify --jobs N`): day files parsed ahead in worker
processes give exactly what parsing them in verify's own process gives, and a worker that fails,
dies or is interrupted never hangs verify and never turns a fault into an OK.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger_books import copy_books, demo_books
from ledger_service.audit import stream
from ledger_service.audit.replay import whole_faults
from ledger_service.audit.stream import LOOKAHEAD, DayStream, read_day, unpack_day
from ledger_service.audit.verify import _ledger_day, verify
from ledger_service.entries import Price, Transaction, entry_hash, from_beancount
from ledger_service.journal import Books, day_of, parse_file, relative
from ledger_service.merkle import leaf_hash
from ledger_service.rules.events import EVENT_TYPES
from ledger_service.rules.events import parse as parse_event
from ledger_service.state import event_rows, holders_of, row_digest_line
from ledger_service.views.ledger_tier import DayAggregator, LedgerRebuild

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


@pytest.fixture(scope="module")
def tampered(books: Path, tmp_path_factory) -> Path:
    """The demo books with an amount changed, a line of garbage, a foreign directive and an include."""
    root = copy_books(books, tmp_path_factory.mktemp("tampered") / "books")
    files = Books(root).journal_files()
    middle = files[len(files) // 2]
    text = middle.read_text(encoding="utf-8")
    number = re.search(r"^  Liabilities:Holders:SP  (-?\d+\.\d+) SP$", text, re.M)
    assert number is not None
    text = text[:number.start(1)] + str(-1 - float(number.group(1))) + text[number.end(1):]
    middle.write_text(text, encoding="utf-8")
    with open(files[1], "a", encoding="utf-8") as handle:
        handle.write(f"\nthis is not beancount\n\n{files[1].stem} open Assets:Forged SP\n")
    with open(files[-2], "a", encoding="utf-8") as handle:
        handle.write('\ninclude "elsewhere.beancount"\n')
    return root


def report_of(root: Path, jobs: int) -> dict:
    out = verify(root, use_db=False, jobs=jobs).to_json()
    return out


# -- one day file as plain data ----------------------------------------------------------------------------


def test_a_day_file_reads_back_field_for_field(books: Path):
    """read_day + unpack_day give the entries, hashes, holders, index lines and leaves the checks
    would compute from Beancount's directives, numbers with their exact text."""
    root = Books(books).root
    for path in Books(books).journal_files():
        directives = parse_file(path)[0]
        faults, triples = unpack_day(path, *read_day(path, relative(root, path)))
        assert faults == []
        assert len(triples) == len(directives)
        for directive, (stand_in, entry, digest) in zip(directives, triples, strict=True):
            want = from_beancount(directive)
            assert entry == want
            assert stand_in.date == directive.date and stand_in.meta == {"filename": str(path),
                                                                         "lineno": directive.meta["lineno"]}
            assert digest == entry_hash(want, want.get("prev") or "")
            assert stand_in.leaf == leaf_hash(bytes.fromhex(want.get("hash")))
            assert stand_in.whole == whole_faults(want)
            if isinstance(want, Transaction):
                assert [str(p.number) for p in entry.postings] == [str(p.units.number) for p in directive.postings]
                if want.kind in EVENT_TYPES:
                    assert stand_in.event == parse_event(want.kind, dict(want.meta), by_meta_key=True)
                assert stand_in.holders == tuple(holders_of(want))
                assert stand_in.index_lines == b"".join(
                    row_digest_line(row) for row in event_rows(want, want.date, relative(root, path),
                                                               directive.meta["lineno"]))
            else:
                assert isinstance(want, Price) and str(entry.number) == str(directive.amount.number)


def test_a_day_files_sums_and_chain_are_the_checks_own(books: Path, tampered: Path):
    """The ledger tier's sums a worker adds up (`stream.day_sums`, rebuilt by `verify._ledger_day`)
    are what its `DayAggregator` adds up entry by entry; each entry's `chain` is its metadata."""
    for root in (books, tampered):
        for path in Books(root).journal_files():
            faults, items, sums = read_day(path, relative(root, path))
            _faults, triples = unpack_day(path, faults, items, sums)
            given, fed = LedgerRebuild(root), LedgerRebuild(root)
            _ledger_day(given, path, sums, triples)
            for directive, entry, _digest in triples:
                fed.feed(path, directive, entry)
                if entry is not None:
                    assert directive.chain == tuple(entry.get(key) for key in stream.CHAIN_KEYS)
            want = fed.days.get(path)
            got = given.days[path]
            if want is None:  # a file without directives: the check's fresh aggregator
                want = DayAggregator(relative(root, path), day_of(path))
            assert vars(got) == vars(want), path
            for agg in (got, want):  # in the same order, the same digits
                agg.sums = [(kind, [(key, str(total)) for key, total in totals.items()])  # type: ignore[assignment]
                            for kind, totals in agg.sums.items()]
                agg.counts = list(agg.counts.items())  # type: ignore[assignment]
            assert vars(got) == vars(want), path
            assert (given.genesis is None) == (fed.genesis is None) and given.genesis == fed.genesis


def test_parse_faults_cross_the_pipe(tampered: Path):
    files = Books(tampered).journal_files()
    faults, triples = unpack_day(files[1], *read_day(files[1], "j"))
    rules = sorted({rule for _file, _line, rule, _message in faults})
    assert rules == ["file.foreign", "syntax"]
    assert any(entry is None and stand_in.date is not None for stand_in, entry, _ in triples)  # the open


# -- the same report, whatever the jobs ------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_workers_give_the_same_report(books: Path, tampered: Path, jobs: int):
    assert report_of(books, jobs) == report_of(books, 0)
    assert report_of(books, 0)["ok"]
    bad = report_of(tampered, jobs)
    assert not bad["ok"]
    assert bad == report_of(tampered, 0)
    rules = {re.search(r"\[([a-z_.]+)\]", fault).group(1) for fault in bad["faults"]}
    assert {"syntax", "file.foreign", "chain.hash", "entry.unbalanced"} <= rules, rules


def test_lookahead_is_bounded(books: Path):
    days = DayStream(Books(books), jobs=1)
    worker = days.workers[0]
    assert worker is not None
    most = 0
    for _day in days:
        most = max(most, len(worker.pending))
    assert 1 <= most <= LOOKAHEAD
    assert not worker.process.is_alive()  # stopped at the end


# -- failures --------------------------------------------------------------------------------------------


def _failing_in_worker(parent: int, name: str, how: str):
    """stream.read_day, but in a worker process file `name` raises or kills the worker."""
    real = stream.read_day

    def read_day_(path, journal):
        if os.getpid() != parent and Path(path).name == name:
            if how == "raise":
                raise RuntimeError("boom")
            os._exit(3)  # the worker dies
        return real(path, journal)
    return read_day_


@pytest.mark.parametrize("how", ["raise", "die"])
def test_a_failing_worker_is_replaced_by_verify_itself(books: Path, tampered: Path, monkeypatch, how: str):
    """A worker that raises or dies: its files are read in verify's own process (a warning says so),
    the report is the same, faults included."""
    for root in (books, tampered):
        expected = report_of(root, 0)
        third = Books(root).journal_files()[2].name
        monkeypatch.setattr(stream, "read_day", _failing_in_worker(os.getpid(), third, how))
        started = time.monotonic()
        got = report_of(root, 1)
        monkeypatch.undo()
        assert time.monotonic() - started < 60
        warnings = got.pop("warnings")
        expected.pop("warnings")
        assert got == expected
        assert len(warnings) == 1 and "parse worker 0 failed" in warnings[0], warnings


def test_an_interrupted_verify_stops_its_workers(books: Path):
    days = DayStream(Books(books), jobs=2)
    processes = [w.process for w in days.workers if w is not None]
    assert len(processes) == 2 and all(p.is_alive() for p in processes)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _day in days:
            started = time.monotonic()
            raise KeyboardInterrupt
    assert not any(p.is_alive() for p in processes)
    assert time.monotonic() - started < 1.5  # each worker exits when its pipe closes, not at a timeout


def test_a_worker_outlives_no_killed_verify(books: Path, tmp_path: Path):
    """verify killed (SIGKILL: no cleanup runs): its worker notices and exits by itself."""
    script = tmp_path / "hold.py"
    script.write_text(
        "import sys, time\n"
        "from ledger_service.audit.stream import DayStream\n"
        "from ledger_service.journal import Books\n"
        "days = DayStream(Books(sys.argv[1]), jobs=1)\n"
        "print(days.workers[0].process.pid, flush=True)\n"
        "next(iter(days))\n"
        "time.sleep(60)\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(books)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        worker = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its parent"
    finally:
        proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cli_jobs_option(books: Path):
    """`verify --jobs 0` and `--jobs 2` print the same JSON report."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    outputs = []
    for jobs in ("0", "2"):
        done = subprocess.run([sys.executable, "-m", "ledger_service.cli", "verify", "--books", str(books), "--no-db",
                               "--json", "--jobs", jobs], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
