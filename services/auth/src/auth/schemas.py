"""Request and response bodies of the auth API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from auth.passwords import MAX_LENGTH, MIN_LENGTH
from auth.phone import MAX_INPUT_LENGTH
from shared.schemas import CamelModel

MobileNumber = Field(
    min_length=1,
    max_length=MAX_INPUT_LENGTH,
    description="A mobile number; national numbers are read in DEFAULT_PHONE_REGION.",
    examples=["7373737373"],
)
Password = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)
Otp = Field(pattern=r"^\d{6}$", description="The six-digit code.", examples=["123456"])


# Requests


class SignupIn(CamelModel):
    mobile_number: str = MobileNumber
    password: str | None = Field(default=None, min_length=MIN_LENGTH, max_length=MAX_LENGTH)


class MobileIn(CamelModel):
    mobile_number: str = MobileNumber


class VerifyOtpIn(CamelModel):
    mobile_number: str = MobileNumber
    otp: str = Otp
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LENGTH,
        description="The password chosen at sign-up, to confirm it; without it, it is dropped.",
    )


class LoginIn(CamelModel):
    mobile_number: str = MobileNumber
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class ResetPasswordIn(CamelModel):
    mobile_number: str = MobileNumber
    otp: str = Otp
    new_password: str = Password


class ChangePasswordIn(CamelModel):
    new_password: str = Password
    current_password: str | None = Field(
        default=None, max_length=MAX_LENGTH, description="Required when a password is set."
    )
    otp: str | None = Field(
        default=None,
        pattern=r"^\d{6}$",
        description="A code from forgot-password: required when no password is set.",
    )


# Responses


class Subscription(CamelModel):
    tier: Literal["BASIC", "PRO"] = "BASIC"
    status: str | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False


class UserOut(CamelModel):
    id: str
    mobile_number: str
    created_at: datetime
    updated_at: datetime
    current_subscription: Subscription | None = None


class UserData(CamelModel):
    user: UserOut


class SignupOut(CamelModel):
    status: Literal["success"] = "success"
    message: str
    user_id: str
    mobile_number: str
    data: UserData


class OtpData(CamelModel):
    expires_in: int = Field(description="Seconds until the code expires.")


class OtpSentOut(CamelModel):
    status: Literal["success"] = "success"
    message: str
    otp: str | None = Field(
        default=None, description="Only when OTP_DELIVERY=response (development)."
    )
    data: OtpData


class TokenData(CamelModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class TokenOut(CamelModel):
    status: Literal["success"] = "success"
    message: str
    token: str
    data: TokenData


class MessageOut(CamelModel):
    status: Literal["success"] = "success"
    message: str


class MeOut(CamelModel):
    status: Literal["success"] = "success"
    data: UserData


class TokenStateData(CamelModel):
    valid_after: float | None


class TokenStateOut(CamelModel):
    status: Literal["success"] = "success"
    data: TokenStateData
