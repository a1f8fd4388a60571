"""The country codes ISO 3166-1 assigns (alpha-2, officially assigned), as a tax rate or a customer's
tax jurisdiction may name them: a code of the right shape that names no country (``ZZ``, ``XX``, ``UK``)
is refused with the detail code ``country_unknown`` (docs/limits.md)."""

from __future__ import annotations

from pydantic_core import PydanticCustomError

ISO_3166_ALPHA2 = frozenset(
    """
        AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
        BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
        BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN
        CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
        EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF
        GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
        HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
        JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
        LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
        ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
        NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG
        PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
        SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS
        ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
        TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
        VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 (one code per word reads as the standard lists them)
)


def known_country(code: str) -> str:
    """``code`` when ISO 3166-1 assigns it to a country; else the ``country_unknown`` problem.

    Example:
        >>> known_country("DE")
        'DE'
        >>> len(ISO_3166_ALPHA2)
        249
    """
    if code not in ISO_3166_ALPHA2:
        raise PydanticCustomError("country_unknown", "unknown country {country}", {"country": code})
    return code
