"""Currencies as Stripe writes them (lower-case ISO 4217 codes), and amounts in minor units.

The codes are ISO 4217's (Debian's iso-codes 4.15, iso_4217.json) without the units no one
invoices in: precious metals (XAU, XAG, XPD, XPT), bond-market units (XBA-XBD), the SDR (XDR),
XSU, XUA, the test code XTS and "no currency" XXX.
"""

from __future__ import annotations

ISO_4217_CODES: frozenset[str] = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob bov brl bsd btn bwp byn bzd
    cad cdf che chf chw clf clp cny cop cou crc cuc cup cve czk djf dkk dop dzd egp ern etb eur fjd fkp gbp
    gel ghs gip gmd gnf gtq gyd hkd hnl hrk htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs khr kmf kpw
    krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn mxv myr mzn nad
    ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sdg sek sgd shp sle
    sll sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd tzs uah ugx usd usn uyi uyu uyw uzs ved
    ves vnd vuv wst xaf xcd xof xpf yer zar zmw zwl
    """.split()
)

# Stripe's zero-decimal currencies (an amount of 500 JPY is ¥500) and its three-decimal ones
# (500 KWD is 0.500 KWD); every other currency has two decimals (500 EUR is €5.00).
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def currency_normalize(code: str) -> str:
    """A code as Stripe writes it: lower case, no surrounding blanks."""
    return code.strip().lower()


def is_currency(code: str) -> bool:
    return currency_normalize(code) in ISO_4217_CODES


def currency_decimals(code: str) -> int:
    code = currency_normalize(code)
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def amount_format(amount: int, currency: str) -> str:
    """An amount in minor units as staff read it: `amount_format(123456, "eur")` is
    "1,234.56 EUR"; no locale's symbols, so the same on every screen."""
    decimals = currency_decimals(currency)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**decimals)
    text = f"{whole:,}" + (f".{minor:0{decimals}d}" if decimals else "")
    return f"{sign}{text} {currency.upper()}"
