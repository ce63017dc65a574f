"""Exact decimal amounts: one quantization per commodity, one context for indices.

Every number in the books is a `decimal.Decimal`. Nothing here depends on the
thread's current decimal context: each operation names the context it uses, so
the engine, the plugin and `verify` compute the same digits on any machine.

| what          | quantum     | rounding where a bound must hold | otherwise       |
|---------------|-------------|----------------------------------|-----------------|
| CNY           | 0.01        | ROUND_DOWN (pays out, buys SP)   | ROUND_HALF_EVEN |
| SV            | 0.0001      | ROUND_DOWN (holder balances)     | ROUND_HALF_EVEN |
| SP            | 0.0001      | ROUND_DOWN (issuance, balances)  | ROUND_HALF_EVEN |
| value CNY/SP  | 0.00000001  | —                                | ROUND_HALF_EVEN |
| rates         | 0.0001      | —                                | exact on input  |
| indices       | 34 significant digits (IEEE decimal128 precision), ROUND_HALF_EVEN |
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

CNY = "CNY"
SV = "SV"
SP = "SP"
COMMODITIES = (CNY, SV, SP)

QUANTUM: dict[str, Decimal] = {
    CNY: Decimal("0.01"),
    SV: Decimal("0.0001"),
    SP: Decimal("0.0001"),
}
VALUE_QUANTUM = Decimal("0.00000001")
RATE_QUANTUM = Decimal("0.0001")

# The largest amount of any commodity the books accept in one posting. A limit on
# everything: 10^13 CNY is far past any real order, and keeps every sum exact
# within 28 significant digits.
MAX_AMOUNT = Decimal("10000000000000")

INDEX_CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN, Emin=-999999, Emax=999999)
# Exact arithmetic on quantized amounts (sums of at most 10^6 postings of at most
# 10^13 with 8 decimals stay well within 40 digits).
EXACT_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)

ZERO = Decimal(0)


class AmountError(ValueError):
    """An amount that the books cannot hold: not a number, too precise, too large."""


def quantize(number: Decimal, currency: str, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round `number` to the quantum of `currency`."""
    return number.quantize(QUANTUM[currency], rounding=rounding, context=EXACT_CONTEXT)


def floor(number: Decimal, currency: str) -> Decimal:
    """Round toward zero to the quantum of `currency` (never more than exactly held)."""
    return quantize(number, currency, ROUND_DOWN)


def quantize_value(number: Decimal) -> Decimal:
    return number.quantize(VALUE_QUANTUM, rounding=ROUND_HALF_EVEN, context=EXACT_CONTEXT)


def mul(a: Decimal, b: Decimal) -> Decimal:
    """Index-precision product (34 significant digits)."""
    return INDEX_CONTEXT.multiply(a, b)


def div(a: Decimal, b: Decimal) -> Decimal:
    """Index-precision quotient (34 significant digits)."""
    return INDEX_CONTEXT.divide(a, b)


def add(a: Decimal, b: Decimal) -> Decimal:
    """Index-precision sum (34 significant digits)."""
    return INDEX_CONTEXT.add(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return INDEX_CONTEXT.subtract(a, b)


def exact_mul(a: Decimal, b: Decimal) -> Decimal:
    """Exact product of two amounts (60 digits: never rounds at the books' magnitudes)."""
    return EXACT_CONTEXT.multiply(a, b)


def exact_add(a: Decimal, b: Decimal) -> Decimal:
    return EXACT_CONTEXT.add(a, b)


def parse_amount(text: object, currency: str, *, field: str, allow_zero: bool = False) -> Decimal:
    """Parse a decimal string into an amount of `currency`, or raise AmountError.

    Refuses floats (pass amounts as strings), NaN and infinities, negatives,
    zero unless `allow_zero`, more decimals than the commodity's quantum, and
    magnitudes above MAX_AMOUNT.
    """
    number = parse_decimal(text, field=field)
    if number < 0:
        raise AmountError(f"{field}: must not be negative, got {text}")
    if number == 0 and not allow_zero:
        raise AmountError(f"{field}: must be greater than zero")
    if number > MAX_AMOUNT:
        raise AmountError(f"{field}: {text} exceeds the limit of {MAX_AMOUNT}")
    quantum = QUANTUM[currency]
    if number != number.quantize(quantum, context=EXACT_CONTEXT):
        raise AmountError(
            f"{field}: {text} has more decimals than {currency} allows ({quantum})"
        )
    return number.quantize(quantum, context=EXACT_CONTEXT)


def parse_rate(text: object, *, field: str) -> Decimal:
    """Parse a fraction in [0, 1] with at most four decimals."""
    number = parse_decimal(text, field=field)
    if not (ZERO <= number <= 1):
        raise AmountError(f"{field}: must be a fraction between 0 and 1, got {text}")
    if number != number.quantize(RATE_QUANTUM, context=EXACT_CONTEXT):
        raise AmountError(f"{field}: {text} has more than 4 decimals")
    return number.quantize(RATE_QUANTUM, context=EXACT_CONTEXT)


def parse_decimal(text: object, *, field: str) -> Decimal:
    """A finite Decimal from a string, an int or a Decimal; never from a float."""
    if isinstance(text, (bool, float)):
        raise AmountError(f"{field}: amounts are decimal strings like \"10.00\", not JSON numbers")
    if isinstance(text, Decimal):
        number = text
    elif isinstance(text, int):
        number = Decimal(text)
    elif isinstance(text, str):
        if len(text) > 40 or not text.strip():
            raise AmountError(f"{field}: {text!r} is not a decimal amount")
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            raise AmountError(f"{field}: {text!r} is not a decimal amount") from None
    else:
        raise AmountError(f"{field}: expected a decimal string, got {type(text).__name__}")
    if not number.is_finite():
        raise AmountError(f"{field}: {text!r} is not a finite number")
    return number


def fmt(number: Decimal) -> str:
    """The canonical text of a number: plain notation, never exponent form."""
    return format(number, "f")
