"""The chart of accounts (SPEC §5). Every account the books use is named here.

Sign convention (Beancount's): assets and expenses carry positive balances,
liabilities, equity and income negative ones. Holders' SV and SP are liabilities
of the platform, so a holder's gain is a negative posting to a control account,
with the holder's id in the posting's `holder` metadata. Issuance accounts
(`Equity:SP:Released`, `Equity:SP:Sold`, `Equity:SV:Granted`) therefore carry
positive balances equal to what was issued, and the retirement accounts
(`Equity:SP:Burned`, `Equity:SP:Redeemed`, `Equity:SV:Converted`) negative ones.
"""

from __future__ import annotations

from .amounts import CNY, SP, SV

POOL = "Assets:Pool:Backing"  # the backing pool (托底资金池): its balance is `pool` in value = pool ÷ circulating
POOL_PAYOUTS = "Assets:Pool:PayoutReserve"  # pool money set aside for requested, unsettled payouts
PLATFORM_CASH = "Assets:Platform:Cash"
PACK_INCOME = "Income:Packs"
REDEMPTION_INCOME = "Income:Redemptions"
PAYOUTS_PAYABLE = "Liabilities:Payouts:Payable"
POOL_EQUITY = "Equity:Pool:Contributions"

SP_RELEASED = "Equity:SP:Released"
SP_SOLD = "Equity:SP:Sold"
SP_BURNED = "Equity:SP:Burned"
SP_REDEEMED = "Equity:SP:Redeemed"
SV_GRANTED = "Equity:SV:Granted"
SV_CONVERTED = "Equity:SV:Converted"

HOLDERS_SV_LOCKED = "Liabilities:Holders:SV:Locked"
HOLDERS_SV_ACTIVE = "Liabilities:Holders:SV:Active"
HOLDERS_SP = "Liabilities:Holders:SP"

# Every account, with the one commodity it may hold and what it is for.
CHART: tuple[tuple[str, str, str], ...] = (
    (POOL, CNY, "backing pool: deposits and injections in, payouts and redemptions out at the value"),
    (POOL_PAYOUTS, CNY, "pool money reserved for payouts requested and not yet settled by the bank"),
    (PLATFORM_CASH, CNY, "platform's own money: pack revenue, redeemed goods"),
    (PACK_INCOME, CNY, "gift-pack revenue kept by the platform"),
    (REDEMPTION_INCOME, CNY, "CNY value of SP redeemed for platform goods"),
    (PAYOUTS_PAYABLE, CNY, "cash-outs owed to holders, cleared when the bank pays"),
    (POOL_EQUITY, CNY, "capital of the pool: always the negative of the pool's balance"),
    (SP_RELEASED, SP, "SP issued by daily releases"),
    (SP_SOLD, SP, "SP issued to merchants against deposits"),
    (SP_BURNED, SP, "SP destroyed by orders"),
    (SP_REDEEMED, SP, "SP retired by payouts (net of cancellations) and redemptions"),
    (SV_GRANTED, SV, "SV created by registrations, packs and orders"),
    (SV_CONVERTED, SV, "SV given up for SP in daily releases"),
    (HOLDERS_SV_LOCKED, SV, "control account: locked SV of inactive members"),
    (HOLDERS_SV_ACTIVE, SV, "control account: active SV of every holder"),
    (HOLDERS_SP, SP, "control account: SP held by every holder"),
)

# Each account's Chinese display name (SPEC's terms): the ledger tier writes it as the `name_zh`
# metadata of the account's Open directive, and Fava's pages show it in Chinese. The account
# names themselves stay ASCII (auditors' tools, bean-query recipes).
NAME_ZH: dict[str, str] = {
    POOL: "托底资金池",
    POOL_PAYOUTS: "托底资金池：提现准备金",
    PLATFORM_CASH: "平台自有资金",
    PACK_INCOME: "礼包收入",
    REDEMPTION_INCOME: "兑换收入",
    PAYOUTS_PAYABLE: "应付变现/提现",
    POOL_EQUITY: "托底资金池资本",
    SP_RELEASED: "共享积分：释放",
    SP_SOLD: "共享积分：售出（保证金）",
    SP_BURNED: "共享积分：销毁",
    SP_REDEEMED: "共享积分：赎回（变现/提现、兑换）",
    SV_GRANTED: "共享值：发放",
    SV_CONVERTED: "共享值：转换为共享积分",
    HOLDERS_SV_LOCKED: "持有人共享值：锁定",
    HOLDERS_SV_ACTIVE: "持有人共享值：已激活",
    HOLDERS_SP: "持有人共享积分",
}

HOLDER_ACCOUNTS = frozenset({HOLDERS_SV_LOCKED, HOLDERS_SV_ACTIVE, HOLDERS_SP})
COMMODITY_OF = {account: currency for account, currency, _ in CHART}
