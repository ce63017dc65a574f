"""The proofs: the daily signed checkpoints, an event's inclusion proof, the consistency proof
between two checkpoints, a holder's proof in the liabilities tree, the books' signing keys
(issue 12; formats: README, "Proofs").

Every key may read them. The answers are computed from the event log view
(`views.event_log`: O(log n) reads of its stored nodes) and the journal (an event's entry is
read back from its day file), never from the service's database.
"""

from __future__ import annotations

from ..views import event_log, liabilities
from . import schemas as s
from .common import Routes, engine, parse_day

bp = Routes("proofs", __name__,
            tag={"name": "Proofs", "description": "Checkpoints of the event log, inclusion and consistency proofs"})


def _root():
    return engine().books.root


# Static paths before `/v1/checkpoints/<day>` (Werkzeug prefers them anyway; the order says so).
@bp.get("/v1/checkpoints/latest")
@bp.read
@bp.output(s.CheckpointOut)
@bp.doc(summary="The checkpoint of the last closed day")
def latest():
    return event_log.checkpoint(_root())


@bp.get("/v1/signing-keys")
@bp.read
@bp.output(s.SigningKeysOut)
@bp.doc(summary="The books' public signing keys: the genesis key and each rotation, signed by the key it replaces",
        description="Check them with `verifier/ledger_verify.py keys FILE --genesis-key HEX` (README 'The signed "
                    "checkpoint').")
def signing_keys():
    return engine().signing_keys()


@bp.get("/v1/checkpoints/consistency")
@bp.read
@bp.input(s.ConsistencyQuery, location="query", arg_name="query")
@bp.output(s.ConsistencyOut)
@bp.doc(summary="The consistency proof between two checkpoints (RFC 9162 §2.1.4)",
        description="`from` after `to` is 422 `proof.bad_range`; a day without a checkpoint is 404.")
def consistency(query):
    return event_log.consistency_proof(_root(), parse_day(query["from"], "from"), parse_day(query["to"], "to"))


@bp.get("/v1/checkpoints/<day>")
@bp.read
@bp.output(s.CheckpointOut)
@bp.doc(summary="The checkpoint of a closed day (BOOKS/checkpoints/YYYY-MM-DD.json)")
def checkpoint(day):
    return event_log.checkpoint(_root(), parse_day(day, "day"))


@bp.get("/v1/events/<event_id>/proof")
@bp.read
@bp.input(s.ProofQuery, location="query", arg_name="query")
@bp.output(s.InclusionOut)
@bp.doc(summary="An event's canonical text and its inclusion proof against a checkpoint (RFC 9162 §2.1.3)",
        description="Default: the latest checkpoint. An event booked after the checkpoint is 409 "
                    "`proof.after_checkpoint` (ask a later one); an unknown event or checkpoint is 404.")
def event_proof(event_id, query):
    day = parse_day(query["checkpoint"], "checkpoint") if query.get("checkpoint") else None
    return event_log.inclusion_proof(_root(), event_id, day)


@bp.get("/v1/holders/<holder_id>/proof")
@bp.read
@bp.input(s.HolderProofQuery, location="query", arg_name="query")
@bp.output(s.HolderProofOut)
@bp.doc(summary="A holder's leaf, salt and path with sums in the liabilities tree of a closed day",
        description="Default: the latest liabilities checkpoint. An unknown holder or day is 404. The path "
                    "carries salted hashes and sums only: it names no other holder.")
def holder_proof(holder_id, query):
    day = parse_day(query["date"], "date") if query.get("date") else None
    return liabilities.holder_proof(_root(), holder_id, day)
