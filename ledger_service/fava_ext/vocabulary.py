"""The words the pages show from the data (a holder's kind, role and channel, an event's kind, a
deposit rule, yes/no), marked for the catalog: the templates translate them with `_(value)`.

Not a dictionary: the English words only, so that `pybabel extract` puts them in the catalog
(`ledger_service/translations`); a value missing here is shown as it is.
"""

from __future__ import annotations

from ..i18n import N_

WORDS: tuple[str, ...] = (
    # holder kinds and roles (config.ROLES)
    N_("member"), N_("merchant"), N_("vip"), N_("shop_owner"), N_("store_owner"), N_("service_provider"),
    # order channels
    N_("online"), N_("offline"),
    # deposit rules (config.DEPOSIT_*)
    N_("sp_held"), N_("cash_paid"),
    # journal entry kinds (rules.events.EventKind)
    N_("genesis"), N_("register"), N_("set_role"), N_("buy_pack"), N_("open_store"), N_("deposit"), N_("order"),
    N_("transfer"), N_("payout"), N_("payout_settle"), N_("payout_cancel"), N_("redeem"), N_("reverse"),
    N_("grant"), N_("release"), N_("price"), N_("checkpoint"), N_("signing_key"), N_("opening"),
    # audit.verify.VERIFIED_OK
    N_("verified: the books are consistent"),
    # who ran the verification shown (audit.record's `by`)
    N_("Fava's Audit page"),
    # yes / no
    N_("True"), N_("False"),
)
