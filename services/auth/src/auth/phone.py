"""Mobile numbers, validated and normalised to E.164 with Google's libphonenumber rules."""

from __future__ import annotations

import phonenumbers

from shared.logging import mask_phone as mask

__all__ = ["InvalidPhoneNumber", "mask", "normalise"]

MAX_INPUT_LENGTH = 32


class InvalidPhoneNumber(ValueError):
    pass


def normalise(raw: str, default_region: str) -> str:
    """``7373737373`` (region IN) and ``+91 73737 37373`` both become ``+917373737373``."""
    text = raw.strip()
    if not text or len(text) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber("Enter a mobile number.")
    try:
        number = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber("This is not a valid mobile number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("This is not a valid mobile number.")
    kind = phonenumbers.number_type(number)
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhoneNumber("This number cannot receive text messages; use a mobile number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
