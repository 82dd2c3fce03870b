"""UK mobile numbers: validate and normalise to E.164 (+447…) with ``phonenumbers``.

Only numbers ``phonenumbers`` calls valid mobiles in the United Kingdom are texted: landlines
cannot receive SMS, and Crown Dependency ranges (07624, 07781 …) are billed as international.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

#: Ofcom reserves 07700 900000-900999 for drama: no subscriber holds them, so the demo, the
#: simulator and the example directory use them. ``phonenumbers`` calls them invalid; we accept
#: them as mobiles so those paths are exercised end to end (Twilio would refuse one with 21211,
#: which becomes a task like any other invalid number).
FICTIONAL_PREFIX = "+447700900"


class InvalidMobile(ValueError):
    """The text says why, without repeating the number (it is personal data)."""


def normalise_uk_mobile(raw: str) -> str:
    """``07400 123456`` / ``+44 7400 123456`` / ``0044…`` -> ``+447400123456``; else raise."""
    cleaned = raw.strip()
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    try:
        number = phonenumbers.parse(cleaned, "GB")
    except NumberParseException as exc:
        raise InvalidMobile(f"not a phone number ({exc.error_type})") from None
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if e164.startswith(FICTIONAL_PREFIX) and len(e164) == len(FICTIONAL_PREFIX) + 3:
        return e164
    if not phonenumbers.is_valid_number(number):
        raise InvalidMobile("not a valid number")
    if phonenumbers.region_code_for_number(number) != "GB":
        raise InvalidMobile("not a UK number")
    if phonenumbers.number_type(number) != PhoneNumberType.MOBILE:
        raise InvalidMobile("not a mobile number")
    return e164


def try_normalise(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalise_uk_mobile(raw)
    except InvalidMobile:
        return None
