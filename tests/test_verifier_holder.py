"""The standalone verifier's holder proofs (issue 12 §5–§6) against trees built here, independently.

The liabilities tree below is written from the format text alone (issue 12 §3/§5: HMAC salts,
id commitments, leaf and node hashes over plain decimal text, RFC 6962's shape), with the
standard library only; nothing of `ledger_service` is imported (but by the end-to-end test on demo
books, which makes proofs with `views.liabilities.holder_proof`, what `prove holder` runs). The
verifier runs as a subprocess, as a holder or a regulator would run it (in that test, as the
program's `main` in this process for every holder, and as a process for a sample).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import hmac
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "verifier" / "ledger_verify.py"
SECRET = bytes(range(32))
SP_INDEX = Decimal("1.0371234567")
SV_INDEX = Decimal("0.8125")
UNIT = Decimal("0.0001")


# --- The tree, written from the format ------------------------------------------------------------

def f(d: Decimal) -> str:
    return format(d, "f")


def h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def salt_of(holder: str) -> str:
    return hmac.new(SECRET, holder.encode("utf-8"), hashlib.sha256).hexdigest()


class Leaf:
    def __init__(self, holder: str, base_sp: Decimal, shares: Decimal, sv_locked: Decimal) -> None:
        self.holder, self.salt = holder, salt_of(holder)
        self.sums = (base_sp, shares, sv_locked)
        id_commit = hashlib.sha256(bytes.fromhex(self.salt) + holder.encode("utf-8")).hexdigest()
        self.hash = h(f"ledger-liability-leaf-v1\n{id_commit}\n{f(base_sp)}\n{f(shares)}\n{f(sv_locked)}")


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree(leaves: list[Leaf]) -> tuple[str, tuple[Decimal, ...]]:
    """(hash, sums) of the tree over `leaves`: RFC 6962's split, sums exact."""
    if not leaves:
        return h("ledger-liability-empty-v1"), (Decimal(0),) * 3
    if len(leaves) == 1:
        return leaves[0].hash, leaves[0].sums
    k = split(len(leaves))
    (lh, ls), (rh, rs) = tree(leaves[:k]), tree(leaves[k:])
    sums = tuple(a + b for a, b in zip(ls, rs, strict=True))
    return h(f"ledger-liability-node-v1\n{lh}\n{rh}\n" + "\n".join(f(s) for s in sums)), sums


def audit_path(m: int, leaves: list[Leaf]) -> list[dict[str, str]]:
    """RFC 6962 PATH(m, D[n]) with each sibling's sums and side (where the sibling stands), bottom to top."""
    if len(leaves) == 1:
        return []
    k = split(len(leaves))
    if m < k:
        sibling, side, below = tree(leaves[k:]), "right", audit_path(m, leaves[:k])
    else:
        sibling, side, below = tree(leaves[:k]), "left", audit_path(m - k, leaves[k:])
    node = {"side": side, "hash": sibling[0]}
    node.update(zip(("base_sp", "shares", "sv_locked"), map(f, sibling[1]), strict=True))
    return below + [node]


def floor(d: Decimal) -> Decimal:
    return d.quantize(UNIT, rounding=ROUND_FLOOR)


def liabilities(leaves: list[Leaf], control_sums: tuple[Decimal, ...] | None = None) -> dict[str, Any]:
    """The liabilities checkpoint; the control accounts from `control_sums` (default: the tree's own)."""
    root, sums = tree(leaves)
    base, shares, locked = sums
    totals = (base + shares * SP_INDEX, shares * SV_INDEX, locked)
    cbase, cshares, clocked = control_sums or sums
    # Control accounts hold rounded postings: above the exact totals by less than one unit per holder.
    residue = UNIT * (len(leaves) // 2)
    control = [(v.quantize(UNIT, rounding=ROUND_CEILING) + residue)
               for v in (cbase + cshares * SP_INDEX, cshares * SV_INDEX, clocked)]
    return {
        "version": "ledger-liabilities-v1", "day": "2026-11-20", "holders": len(leaves), "root": root,
        "sums": {"base_sp": f(base), "shares": f(shares), "sv_locked": f(locked)},
        "indices": {"epoch": 0, "sp_index": f(SP_INDEX), "sv_index": f(SV_INDEX)},
        "totals": {"sp": f(totals[0]), "sv_active": f(totals[1]), "sv_locked": f(totals[2])},
        "control": {"Liabilities:Holders:SP": f(control[0]), "Liabilities:Holders:SV:Active": f(control[1]),
                    "Liabilities:Holders:SV:Locked": f(control[2])},
        "head": h("head"), "log_root": h("log"),
    }


def holder_proof(m: int, leaves: list[Leaf], lb: dict[str, Any] | None = None) -> dict[str, Any]:
    leaf = leaves[m]
    base, shares, locked = leaf.sums
    return {
        "version": "ledger-holder-proof-v1", "holder": leaf.holder, "salt": leaf.salt, "leaf_index": m,
        "leaf": {"base_sp": f(base), "shares": f(shares), "sv_locked": f(locked)},
        "balances": {"sp": f(floor(base + shares * SP_INDEX)), "sv_active": f(floor(shares * SV_INDEX)),
                     "sv_locked": f(floor(locked))},
        "path": audit_path(m, leaves),
        "liabilities": lb if lb is not None else liabilities(leaves),
    }


def synthetic(n: int) -> list[Leaf]:
    """n holders: some with zero shares, some with Chinese ids, figures at several scales."""
    leaves = []
    for i in range(n):
        holder = f"会员-{i:03d}-张" if i % 3 == 1 else f"M{i:06d}"
        shares = Decimal(0) if i % 4 == 0 else Decimal(f"{i * 7 % 23}.{i:04d}")
        sp_exact = Decimal(f"{i * 13 % 97}.{(i * 3701) % 1000000:06d}")  # the holder's SP now, ≥ 0, finer than 0.0001
        base_sp = sp_exact - shares * SP_INDEX
        leaves.append(Leaf(holder, base_sp, shares, Decimal(f"{i % 5}.{i:02d}") if i % 2 else Decimal("0")))
    return leaves


# --- Running the verifier -------------------------------------------------------------------------

def run(tmp_path: Path, *args: Any, name: str = "proof.json") -> subprocess.CompletedProcess[str]:
    files = []
    for i, arg in enumerate(args):
        if isinstance(arg, (dict, list)):
            file = tmp_path / f"{i}-{name}"
            file.write_text(json.dumps(arg, ensure_ascii=False), encoding="utf-8")
            files.append(str(file))
        else:
            files.append(str(arg))
    return subprocess.run([sys.executable, str(VERIFIER), *files], capture_output=True, text=True, timeout=60)


def verify(tmp_path: Path, proof: dict[str, Any],
           kept: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--liabilities", kept] if kept is not None else []
    return run(tmp_path, "holder", proof, *extra)


def refused(done: subprocess.CompletedProcess[str], check: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout.startswith("FAIL: ") and check in done.stdout, done.stdout
    assert "Traceback" not in done.stderr


@pytest.fixture(autouse=True)
def exact_decimals() -> Any:
    with localcontext() as context:
        context.prec = 400
        yield


# --- Accepted ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", range(1, 18))
def test_every_holder_of_every_tree_verifies(tmp_path: Path, n: int) -> None:
    leaves = synthetic(n)
    lb = liabilities(leaves)
    done = run(tmp_path, "liabilities", lb)
    assert done.returncode == 0 and done.stdout.startswith("OK: "), (done.stdout, done.stderr)
    for m in range(n):
        proof = holder_proof(m, leaves, lb)
        done = verify(tmp_path, proof, kept=lb)
        assert done.returncode == 0, (n, m, done.stdout, done.stderr)
        assert done.stdout.startswith("OK: ") and f"leaf {m} of {n}" in done.stdout, done.stdout


def test_a_chinese_holder_and_a_holder_without_shares_verify(tmp_path: Path) -> None:
    leaves = synthetic(9)
    assert leaves[1].holder.startswith("会员") and leaves[0].sums[1] == 0
    for m in (0, 1):
        done = verify(tmp_path, holder_proof(m, leaves))
        assert done.returncode == 0, done.stdout
        assert repr(leaves[m].holder) in done.stdout


# --- Refused -------------------------------------------------------------------------------------

N, M = 11, 5  # a tree whose paths have left and right siblings


@pytest.fixture
def good() -> dict[str, Any]:
    return holder_proof(M, synthetic(N))


def test_the_sample_is_accepted(tmp_path: Path, good: dict[str, Any]) -> None:
    assert verify(tmp_path, good).returncode == 0
    assert {node["side"] for node in good["path"]} == {"left", "right"}


@pytest.mark.parametrize("name", ["base_sp", "shares", "sv_locked"])
def test_a_changed_leaf_figure(tmp_path: Path, good: dict[str, Any], name: str) -> None:
    good["leaf"][name] = f(Decimal(good["leaf"][name]) + UNIT)
    refused(verify(tmp_path, good), "path")


def test_a_leaf_figure_written_otherwise_is_another_leaf(tmp_path: Path, good: dict[str, Any]) -> None:
    good["leaf"]["shares"] += "0"  # the same number, not the same text: figures are hashed as written
    refused(verify(tmp_path, good), "path")


@pytest.mark.parametrize("name", ["sp", "sv_active", "sv_locked"])
def test_a_changed_balance(tmp_path: Path, good: dict[str, Any], name: str) -> None:
    good["balances"][name] = f(Decimal(good["balances"][name]) + UNIT)
    refused(verify(tmp_path, good), f"balances.{name}")


def test_a_balance_not_rounded_down(tmp_path: Path) -> None:
    leaves = synthetic(6)
    proof = holder_proof(3, leaves)
    base, shares, _ = leaves[3].sums
    exact_sp = base + shares * SP_INDEX
    assert exact_sp != floor(exact_sp)
    proof["balances"]["sp"] = f(exact_sp)
    refused(verify(tmp_path, proof), "balances.sp")


def test_a_dropped_or_added_sibling(tmp_path: Path, good: dict[str, Any]) -> None:
    dropped = copy.deepcopy(good)
    del dropped["path"][1]
    refused(verify(tmp_path, dropped), "path")
    added = copy.deepcopy(good)
    added["path"].append(dict(good["path"][0], side="left"))
    refused(verify(tmp_path, added), "path")
    too_long = copy.deepcopy(good)
    too_long["path"] += [dict(good["path"][0])] * 3
    refused(verify(tmp_path, too_long), "⌈log2")


def test_a_flipped_side(tmp_path: Path, good: dict[str, Any]) -> None:
    for i in range(len(good["path"])):
        proof = copy.deepcopy(good)
        proof["path"][i]["side"] = {"left": "right", "right": "left"}[proof["path"][i]["side"]]
        refused(verify(tmp_path, proof), f"path[{i}].side")


def test_a_wrong_leaf_index(tmp_path: Path, good: dict[str, Any]) -> None:
    good["leaf_index"] = N
    refused(verify(tmp_path, good), "leaf_index")


def test_a_wrong_salt_or_holder(tmp_path: Path, good: dict[str, Any]) -> None:
    salted = copy.deepcopy(good)
    salted["salt"] = salt_of("someone else")
    refused(verify(tmp_path, salted), "path")
    renamed = copy.deepcopy(good)
    renamed["holder"] = synthetic(N)[M + 1].holder
    refused(verify(tmp_path, renamed), "path")


def test_a_negative_subtree_hidden_by_an_inflated_leaf(tmp_path: Path) -> None:
    """The known flaw of naive Merkle-sum proofs: a subtree whose SP is negative at the index,
    balanced by another leaf inflated by as much, so the root's sums (and the control accounts)
    are exactly the honest ones. Every figure but the two leaves' hashes and sums matches;
    the verifier must refuse at the negative node itself."""
    honest = synthetic(8)
    theft = Decimal("500")
    forged = list(honest)
    b4, s4, l4 = honest[4].sums                 # leaf 4: SP taken below zero (base_sp + shares × S < 0)
    forged[4] = Leaf(honest[4].holder, b4 - theft, s4, l4)
    b0, s0, l0 = honest[0].sums                 # leaf 0: inflated by as much
    forged[0] = Leaf(honest[0].holder, b0 + theft, s0, l0)
    assert forged[4].sums[0] + forged[4].sums[1] * SP_INDEX < 0
    _, subtree = tree(forged[4:])               # leaves 4..7: a negative-SP subtree
    assert subtree[0] + subtree[1] * SP_INDEX < 0
    assert tree(forged)[1] == tree(honest)[1]   # the root's sums are the honest ones
    lb = liabilities(forged)
    assert lb["control"] == liabilities(honest)["control"]
    assert run(tmp_path, "liabilities", lb).returncode == 0  # the aggregate alone cannot see it
    # Holder 0 (inflated, happy) sees the negative subtree as its top sibling, path[2].
    proof = holder_proof(0, forged, lb)
    assert proof["path"][2]["hash"] == tree(forged[4:])[0]
    refused(verify(tmp_path, proof), "path[2] (sibling): base_sp + shares × sp_index")
    # Holders 5, 6, 7 see it lower down (leaf 4 or the node 4..5); holder 4 sees its own leaf.
    refused(verify(tmp_path, holder_proof(5, forged, lb)), "path[0] (sibling)")
    refused(verify(tmp_path, holder_proof(6, forged, lb)), "path[1] (sibling)")
    refused(verify(tmp_path, holder_proof(4, forged, lb)), "leaf: base_sp + shares × sp_index")
    # Negative shares or locked SV, hidden the same way.
    for figure in (1, 2):
        bad = list(honest)
        sums = list(honest[4].sums)
        sums[figure] -= theft
        bad[4] = Leaf(honest[4].holder, *sums)
        sums0 = list(honest[0].sums)
        sums0[figure] += theft
        bad[0] = Leaf(honest[0].holder, *sums0)
        name = ("base_sp", "shares", "sv_locked")[figure]
        refused(verify(tmp_path, holder_proof(0, bad)), f"path[2] (sibling): {name}")


def test_liabilities_other_than_the_kept_ones(tmp_path: Path) -> None:
    leaves = synthetic(N)
    kept = liabilities(leaves)
    later = liabilities(leaves[:-1])  # a consistent tree, but not the one you kept
    refused(verify(tmp_path, holder_proof(M, leaves[:-1], later), kept=kept), "liabilities differs")
    proof = holder_proof(M, leaves, kept)
    other = copy.deepcopy(kept)
    other["head"] = h("another head")
    refused(verify(tmp_path, proof, kept=other), "head")
    assert verify(tmp_path, proof, kept=kept).returncode == 0


def test_liabilities_whose_totals_or_control_do_not_add_up(tmp_path: Path) -> None:
    lb = liabilities(synthetic(N))
    wrong_total = copy.deepcopy(lb)
    wrong_total["totals"]["sv_active"] = f(Decimal(lb["totals"]["sv_active"]) + UNIT)
    refused(run(tmp_path, "liabilities", wrong_total), "totals.sv_active")
    short = copy.deepcopy(lb)
    short["control"]["Liabilities:Holders:SP"] = f(Decimal(lb["totals"]["sp"]) - UNIT)
    refused(run(tmp_path, "liabilities", short), "control.Liabilities:Holders:SP")
    over = copy.deepcopy(lb)
    over["control"]["Liabilities:Holders:SV:Locked"] = f(Decimal(lb["totals"]["sv_locked"]) + UNIT * (N + 1))
    refused(run(tmp_path, "liabilities", over), "control.Liabilities:Holders:SV:Locked")
    almost = copy.deepcopy(lb)  # just under the bound: accepted
    almost["control"]["Liabilities:Holders:SV:Locked"] = f(Decimal(lb["totals"]["sv_locked"]) + UNIT * N
                                                           + UNIT / 2)
    assert run(tmp_path, "liabilities", almost).returncode == 0
    proof = holder_proof(M, synthetic(N), wrong_total)  # the holder command checks the totals too
    refused(verify(tmp_path, proof), "totals.sv_active")
    proof = holder_proof(M, synthetic(N), short)  # but not the control accounts (format: `liabilities` does)
    assert verify(tmp_path, proof).returncode == 0


def test_the_empty_tree(tmp_path: Path) -> None:
    lb = liabilities([])
    assert run(tmp_path, "liabilities", lb).returncode == 0
    lb["root"] = h("not empty")
    refused(run(tmp_path, "liabilities", lb), "root")


# --- Unreadable: exit 2, never a traceback ---------------------------------------------------------

def test_malformed_input_exits_2(tmp_path: Path, good: dict[str, Any]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "ledger-holder-proof-v1", ', encoding="utf-8")
    cases: list[Any] = [broken, tmp_path / "missing.json", [1, 2]]
    for mutate in (
        lambda p: p["leaf"].__setitem__("shares", 3),              # a number, not decimal text
        lambda p: p["leaf"].__setitem__("shares", "1e3"),          # exponent form
        lambda p: p["balances"].pop("sp"),
        lambda p: p.pop("salt"),
        lambda p: p.__setitem__("leaf_index", "5"),
        lambda p: p["path"][0].pop("shares"),
        lambda p: p["path"].__setitem__(0, "abc"),
        lambda p: p["liabilities"]["sums"].__setitem__("base_sp", None),
        lambda p: p["liabilities"].__setitem__("holders", True),
        lambda p: p["liabilities"]["indices"].pop("sv_index"),
    ):
        proof = copy.deepcopy(good)
        mutate(proof)
        cases.append(proof)
    for case in cases:
        done = run(tmp_path, "holder", case)
        assert done.returncode == 2, (case, done.stdout, done.stderr)
        assert done.stderr.startswith("ERROR: ") and "Traceback" not in done.stderr, done.stderr
        assert "OK" not in done.stdout
    done = run(tmp_path, "liabilities", broken)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = run(tmp_path, "holder", good, "--liabilities", broken)
    assert done.returncode == 2 and "Traceback" not in done.stderr


# --- End to end: the books' own holder proofs (`ledger-service prove holder`, issue 12 §5) -----------

def ledger_service_cli() -> list[str] | None:
    """The `ledger-service` command, when it has `prove holder`; else None."""
    script = shutil.which("ledger-service", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "ledger_service.cli"]
    try:
        done = subprocess.run([*command, "prove", "holder", "--help"], capture_output=True, text=True, timeout=120)
    except OSError:
        return None
    return command if done.returncode == 0 else None


@pytest.fixture(scope="module")
def demo_books(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    cli = ledger_service_cli()
    assert cli is not None, "`ledger-service prove holder` is not available"
    books = tmp_path_factory.mktemp("holder-e2e") / "books"
    subprocess.run([*cli, "demo", "--books", str(books), "--members", "30", "--merchants", "4", "--days", "3"],
                   check=True, capture_output=True, timeout=600)
    return cli, books


def _verifier_module() -> Any:
    spec = importlib.util.spec_from_file_location("ledger_verify_in_process", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_books_own_holder_proofs_verify(demo_books: tuple[list[str], Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Every holder the journal names, on every closed day's liabilities, against the kept file: each
    proof made as `ledger-service prove holder` makes it (`liabilities.holder_proof`) and checked by the
    verifier's own `main` in this process; on each day the first, a middle and the last holder also
    through both programs as processes (the command's file equal to the proof, the verifier's exit 0),
    and a proof with a changed balance refused."""
    from ledger_service.views import liabilities

    cli, books = demo_books
    verifier = _verifier_module()
    journal = "\n".join(p.read_text(encoding="utf-8") for p in (books / "journal").glob("*/*.beancount"))
    holders = sorted(set(re.findall(r'^ +holder: "([^"]+)"', journal, flags=re.M)))
    kept = sorted((books / "checkpoints").glob("*.liabilities.json"))
    assert len(kept) >= 2 and len(holders) >= 30, (kept, holders)
    proved = 0
    for file in kept:
        day = date.fromisoformat(file.name[:10])
        size = json.loads(file.read_text(encoding="utf-8"))["holders"]
        in_tree: list[str] = []
        for holder in holders:
            try:
                proof = liabilities.holder_proof(books, holder, day)
            except liabilities.ProofNotFound as exc:  # a holder who appeared after that day
                assert exc.rule == "holder.unknown", exc
                continue
            in_tree.append(holder)
            out = tmp_path / "proof.json"
            out.write_text(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            assert verifier.main(["holder", str(out), "--liabilities", str(file)]) == 0, capsys.readouterr()
            assert capsys.readouterr().out.startswith("OK: ")
            proof["balances"]["sp"] = f(Decimal(proof["balances"]["sp"]) + 1)
            out.write_text(json.dumps(proof), encoding="utf-8")
            assert verifier.main(["holder", str(out)]) == 1
            assert "balances.sp" in capsys.readouterr().out
        assert len(in_tree) == size, (day, len(in_tree), size)
        proved += len(in_tree)
        for holder in {in_tree[0], in_tree[len(in_tree) // 2], in_tree[-1]}:
            out = tmp_path / f"cli-{holder}.json"
            subprocess.run([*cli, "prove", "holder", "--books", str(books), holder, "--date", day.isoformat(),
                            "--out", str(out)], check=True, capture_output=True, text=True, timeout=120)
            written = json.loads(out.read_text(encoding="utf-8"))
            assert written == liabilities.holder_proof(books, holder, day)
            checked = verify(tmp_path, written, kept=json.loads(file.read_text()))
            assert checked.returncode == 0 and checked.stdout.startswith("OK: "), (day, holder, checked.stdout)
            written["balances"]["sp"] = f(Decimal(written["balances"]["sp"]) + 1)
            refused(verify(tmp_path, written), "balances.sp")
        gone = subprocess.run([*cli, "prove", "holder", "--books", str(books), "nobody-at-all", "--date",
                               day.isoformat()], capture_output=True, text=True, timeout=120)
        assert gone.returncode != 0 and "holder.unknown" in gone.stdout + gone.stderr
    assert proved > 30


def test_the_books_own_liabilities_checkpoints_verify(demo_books: tuple[list[str], Path]) -> None:
    _, books = demo_books
    for file in sorted((books / "checkpoints").glob("*.liabilities.json")):
        done = subprocess.run([sys.executable, str(VERIFIER), "liabilities", str(file)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, (file.name, done.stdout, done.stderr)


# --- It depends on nothing but the standard library ---------------------------------------------

def test_the_verifier_still_imports_only_the_standard_library() -> None:
    """(but for `cryptography`, inside `ed25519_verify` only: tests/test_verifier.py checks that one)"""
    tree_ = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    imported = set()
    outside = [n for n in tree_.body if not (isinstance(n, ast.FunctionDef) and n.name == "ed25519_verify")]
    for node in (n for top in outside for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import"
            imported.add((node.module or "").split(".")[0])
    assert "decimal" in imported and "hashlib" in imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)
    assert not imported & {"ledger_service", "beancount", "beanquery"}
