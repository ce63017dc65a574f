"""The signed checkpoint of a closed day and the signing key's rotation, as booked entries (issue 12 §4).

A checkpoint is one object (README "The signed checkpoint", `ledger-checkpoint-v2`):

    {"version": "ledger-checkpoint-v2", "day": "YYYY-MM-DD",
     "last_seq": n, "head": <hash of entry n: the day's release>,
     "log_size": n, "log_root": <RFC 6962 root over the first n entries' hashes>,
     "liabilities": {"root": ..., "holders": N, "sums": {"base_sp", "shares", "sv_locked"},
                     "indices": {"epoch", "sp_index", "sv_index"}},
     "supply": {cap, issued, released, sold, burned, redeemed, circulating, pool_cny,
                value_cny_per_sp, closing_value_cny_per_sp},
     "key": <public key that signed>, "signature": <Ed25519 over the rest>}

Each close books one `checkpoint` entry, in the chain, holding the same fields flat in its
metadata (`checkpoint_day`, `last_seq`, …, `supply_<figure>`, `signing_key`, `signature`); the
object is a pure function of the entry (`object_of`) and the entry of the object (`event_of`),
so the file `BOOKS/checkpoints/YYYY-MM-DD.json`, the API's answer and the journal say the same.
The entry has no postings: it moves no balance.

A key rotation (`signing_key` entry) names the new public key, the previous one, and the
previous key's signature over the rotation object
`{"version": "ledger-key-rotation-v1", "day", "previous_key", "public_key"}`.

Pure: the figures come from the caller (the engine reads the views' roots and the day's
stored supply report); `verify` recomputes every one of them from the journal.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ..errors import Conflict
from ..state import State
from .base import Builder, Ctx, inputs_of
from .events import CHECKPOINT_SUPPLY, Checkpoint, EventKind, SigningKey, parse

CHECKPOINT_VERSION = "ledger-checkpoint-v2"
ROTATION_VERSION = "ledger-key-rotation-v1"
SUMS = ("base_sp", "shares", "sv_locked")


def checkpoint_object(log: dict[str, Any], liabilities: dict[str, Any], supply: dict[str, str],
                      key: str) -> dict[str, Any]:
    """The unsigned checkpoint object of a closed day: the event log's checkpoint (`day`, `last_seq`,
    `head`, `log_size`, `log_root`), the liabilities checkpoint (`root`, `holders`, `sums`, `indices`),
    the day's supply report and the public key that will sign it."""
    return {
        "version": CHECKPOINT_VERSION,
        "day": log["day"], "last_seq": int(log["last_seq"]), "head": log["head"],
        "log_size": int(log["log_size"]), "log_root": log["log_root"],
        "liabilities": {
            "root": liabilities["root"], "holders": int(liabilities["holders"]),
            "sums": {k: str(liabilities["sums"][k]) for k in SUMS},
            "indices": {"epoch": int(liabilities["indices"]["epoch"]),
                        "sp_index": str(liabilities["indices"]["sp_index"]),
                        "sv_index": str(liabilities["indices"]["sv_index"])},
        },
        "supply": {k: str(supply[k]) for k in CHECKPOINT_SUPPLY},
        "key": key,
    }


def event_of(obj: dict[str, Any]) -> Checkpoint:
    """The `checkpoint` event that books a signed checkpoint object."""
    liab = obj["liabilities"]
    return Checkpoint(
        day=obj["day"], last_seq=obj["last_seq"], head=obj["head"], log_size=obj["log_size"],
        log_root=obj["log_root"], liabilities_root=liab["root"], holders=liab["holders"],
        sum_base_sp=liab["sums"]["base_sp"], sum_shares=liab["sums"]["shares"],
        sum_sv_locked=liab["sums"]["sv_locked"], epoch=liab["indices"]["epoch"],
        sp_index=liab["indices"]["sp_index"], sv_index=liab["indices"]["sv_index"],
        **{f"supply_{k}": obj["supply"][k] for k in CHECKPOINT_SUPPLY},
        key=obj["key"], signature=obj["signature"],
    )


def object_of(event: Checkpoint) -> dict[str, Any]:
    """The signed checkpoint object a `checkpoint` event (or entry, parsed) holds."""
    return {
        "version": CHECKPOINT_VERSION,
        "day": event.day, "last_seq": event.last_seq, "head": event.head,
        "log_size": event.log_size, "log_root": event.log_root,
        "liabilities": {
            "root": event.liabilities_root, "holders": event.holders,
            "sums": {"base_sp": event.sum_base_sp, "shares": event.sum_shares, "sv_locked": event.sum_sv_locked},
            "indices": {"epoch": event.epoch, "sp_index": event.sp_index, "sv_index": event.sv_index},
        },
        "supply": {k: getattr(event, f"supply_{k}") for k in CHECKPOINT_SUPPLY},
        "key": event.key, "signature": event.signature,
    }


def parse_checkpoint(meta: dict[str, Any]) -> Checkpoint:
    """The `checkpoint` event a checkpoint entry's metadata holds (Invalid naming the field at fault)."""
    event = parse(EventKind.CHECKPOINT, meta, by_meta_key=True)
    assert isinstance(event, Checkpoint)
    return event


def parse_signing_key(meta: dict[str, Any]) -> SigningKey:
    """The `signing_key` event a key entry's metadata holds (Invalid naming the field at fault)."""
    event = parse(EventKind.SIGNING_KEY, meta, by_meta_key=True)
    assert isinstance(event, SigningKey)
    return event


def rotation_object(day: date | str, previous_key: str, public_key: str) -> dict[str, Any]:
    """What the previous key signs when the books' key is rotated."""
    day_text = day if isinstance(day, str) else day.isoformat()
    return {"version": ROTATION_VERSION, "day": day_text, "previous_key": previous_key, "public_key": public_key}


def checkpoint(state: State, event: Checkpoint, ctx: Ctx):
    """Book a closed day's checkpoint: refused for a day that is not closed, or a log that does not
    end at its last entry (the figures themselves are the engine's; `verify` recomputes them)."""
    if date.fromisoformat(event.day) >= state.g.open_day:
        raise Conflict("checkpoint.day_open", f"checkpoint_day: {event.day} is not closed (the open day is "
                                              f"{state.g.open_day})", "checkpoint_day")
    if event.log_size != event.last_seq or event.last_seq >= ctx.seq:
        raise Conflict("checkpoint.log_size", f"log_size: {event.log_size} must equal last_seq {event.last_seq}, "
                                              f"an entry before this one (seq {ctx.seq})", "log_size")
    b = Builder(ctx, EventKind.CHECKPOINT, f"checkpoint of {event.day}: {event.log_size} entries, "
                                           f"{event.holders} holders, signed", inputs_of(event))
    return b.build()


def signing_key(state: State, event: SigningKey, ctx: Ctx):
    """Book a new signing key: with the previous key and its signature, or (books made before
    signing existed) the first key alone."""
    if (event.previous_key is None) != (event.signature is None):
        raise Conflict("signing_key.unsigned", "signature: a rotation names the previous key and carries its "
                                               "signature (both or neither)", "signature")
    what = "rotated" if event.previous_key else "introduced"
    b = Builder(ctx, EventKind.SIGNING_KEY, f"signing key {what}: {event.public_key}", inputs_of(event))
    return b.build()
