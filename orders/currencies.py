"""ISO 4217 currency codes and their minor units, kept in code so validation never depends on the locale or a
network lookup.

The list is the active codes of ISO 4217 (funds codes, precious metals and testing codes such as XAU or XTS are
left out on purpose: an order is never priced in them). Minor units say how many decimals an amount may carry:
most currencies use 2, the exceptions are listed below.
"""

from decimal import ROUND_HALF_UP, Decimal
from functools import cache


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


ISO_4217_CODES: frozenset[str] = _codes(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
    CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
    HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
    MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
    TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """
)

_ZERO_DECIMAL = _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF")
_THREE_DECIMAL = _codes("BHD IQD JOD KWD LYD OMR TND")

# Amounts are stored with this many decimals so the three-decimal currencies fit; each amount is still checked
# against its own currency's minor units.
MONEY_DECIMAL_PLACES = 3
MONEY_MAX_DIGITS = 15


def is_valid_currency(code: str) -> bool:
    return code in ISO_4217_CODES


def minor_units(code: str) -> int:
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


@cache
def quantum(code: str) -> Decimal:
    """The smallest amount of `code` (Decimal("0.01") for EUR), for quantizing computed sums."""
    return Decimal(1).scaleb(-minor_units(code))


def fits_minor_units(amount: Decimal | int, code: str) -> bool:
    """True when `amount` has no more decimals than `code` allows (10.005 EUR does not fit)."""
    amount = Decimal(amount)
    return amount == amount.quantize(quantum(code))


def money_format(amount: Decimal | int, code: str) -> str:
    """An amount as a string with exactly the currency's decimals ("1250.00" EUR, "1250" JPY, "1.250" KWD)."""
    return format(Decimal(amount).quantize(quantum(code), rounding=ROUND_HALF_UP), "f")
