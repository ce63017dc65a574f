"""The README's API walkthrough, run word for word (issue 14): a newcomer pastes it and sees a release.

The first `sh` block of "## The API in a page" is run by bash in a scratch folder, as written,
with two substitutions only: `. .venv/bin/activate` (the test's `ledger-service` is this
checkout's, put on the PATH instead) and the port 8000 (a free one). Each `curl` prints one
JSON document; the `# ⇒ "key": "value", …` line after it lists figures that must appear in
that document (at any depth), in the order the commands run. The server the block starts in
the background is stopped by the block's own `kill %1`, and by the test if the block fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ACTIVATE = ". .venv/bin/activate"
EXPECT = re.compile(r'"(\w+)": "([^"]*)"')

pytestmark = pytest.mark.skipif(subprocess.run(["which", "curl"], capture_output=True).returncode != 0,
                                reason="curl is not installed")


def walkthrough() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## The API in a page", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def expectations(block: str) -> list[list[tuple[str, str]]]:
    """For each `curl` command, the (key, value) pairs of the `# ⇒` line after it ([] if none)."""
    out: list[list[tuple[str, str]]] = []
    for line in block.splitlines():
        if line.startswith("curl "):
            out.append([])
        elif line.startswith("# ⇒"):
            out[-1] += EXPECT.findall(line)
    return out


def pairs(document) -> set[tuple[str, str]]:
    """Every (key, string value) of a JSON document, at any depth."""
    found: set[tuple[str, str]] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, str):
                found.add((key, value))
            else:
                found |= pairs(value)
    elif isinstance(document, list):
        for item in document:
            found |= pairs(item)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_walkthrough_runs_as_written_and_shows_a_release(tmp_path):
    block = walkthrough()
    assert block.splitlines()[0].startswith(ACTIVATE), "the walkthrough says how to get ledger-service on the PATH"
    assert "init --books books/shop --start" in block and "/close" in block
    port = _free_port()
    script = block.replace(ACTIVATE, ":", 1).replace(":8000", f":{port}").replace("--port 8000", f"--port {port}")
    assert str(port) in script
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ledger-service"  # what .venv/bin/ledger-service is, for this checkout
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ledger_service.cli "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COLUMNS")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    work = tmp_path / "repo"
    work.mkdir()
    proc = subprocess.Popen(["bash", "-e", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # the server, if the block stopped before `kill %1`
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, stdout + stderr
    documents = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    wanted = expectations(block)
    assert len(documents) == len(wanted) == 8, (documents, stdout)
    for document, expected in zip(documents, wanted, strict=True):
        assert "type" not in document or "status" not in document, document  # no problem answer
        missing = [pair for pair in expected if pair not in pairs(document)]
        assert not missing, (missing, document)
    closed = documents[5]["closed"]
    assert len(closed) == 2 and all(day["released_sp"] == "500.0000" for day in closed)
    holder = documents[7]
    assert holder["id"] == "m1" and float(holder["sp"]) > 0  # the reader sees the member's released SP
    assert (work / "books" / "shop" / "main.beancount").is_file()
