"""UK mobile numbers: validate and normalise to E.164 (+447…) with ``phonenumbers``.

Only numbers ``phonenumbers`` calls valid mobiles in the United Kingdom are texted: landlines
cannot receive SMS, and Crown Dependency ranges (07624, 07781 …) are billed as international.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType


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
    if not phonenumbers.is_valid_number(number):
        raise InvalidMobile("not a valid number")
    if phonenumbers.region_code_for_number(number) != "GB":
        raise InvalidMobile("not a UK number")
    if phonenumbers.number_type(number) != PhoneNumberType.MOBILE:
        raise InvalidMobile("not a mobile number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def try_normalise(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalise_uk_mobile(raw)
    except InvalidMobile:
        return None
