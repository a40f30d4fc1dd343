"""Request and response bodies of the auth API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from auth.passwords import MAX_LENGTH, MIN_LENGTH
from auth.phone import MAX_INPUT_LENGTH
from shared.schemas import CamelModel, examples

_NUMBER = "+917373737373"
_USER_ID = "5d6f8a2e-1c3b-4e7a-9f0d-2b4c6e8a0f13"
_AT = "2026-12-01T09:00:00Z"
_USER = {
    "id": _USER_ID,
    "mobileNumber": _NUMBER,
    "createdAt": _AT,
    "updatedAt": _AT,
    "currentSubscription": {"tier": "BASIC", "cancelAtPeriodEnd": False},
}
_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI1ZDZmOGEyZSJ9.c2lnbmF0dXJl"

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
    model_config = examples({"mobileNumber": "7373737373", "password": "correct horse battery"})

    mobile_number: str = MobileNumber
    password: str | None = Field(default=None, min_length=MIN_LENGTH, max_length=MAX_LENGTH)


class MobileIn(CamelModel):
    model_config = examples({"mobileNumber": "7373737373"})

    mobile_number: str = MobileNumber


class VerifyOtpIn(CamelModel):
    model_config = examples({"mobileNumber": "7373737373", "otp": "123456"})

    mobile_number: str = MobileNumber
    otp: str = Otp
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LENGTH,
        description="The password chosen at sign-up, to confirm it; without it, it is dropped.",
    )


class LoginIn(CamelModel):
    model_config = examples({"mobileNumber": "7373737373", "password": "correct horse battery"})

    mobile_number: str = MobileNumber
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class ResetPasswordIn(CamelModel):
    model_config = examples(
        {"mobileNumber": "7373737373", "otp": "123456", "newPassword": "staple battery horse"}
    )

    mobile_number: str = MobileNumber
    otp: str = Otp
    new_password: str = Password


class ChangePasswordIn(CamelModel):
    model_config = examples(
        {"currentPassword": "correct horse battery", "newPassword": "staple battery horse"}
    )

    new_password: str = Password
    current_password: str | None = Field(
        default=None, max_length=MAX_LENGTH, description="Required when a password is set."
    )
    otp: str | None = Field(
        default=None,
        pattern=r"^\d{6}$",
        description="A code from forgot-password: required when no password is set.",
    )


class DeleteAccountIn(CamelModel):
    model_config = examples({"otp": "123456"})

    otp: str = Field(
        pattern=r"^\d{6}$",
        description="A code send-otp sent to the account's number just now: a token alone"
        " cannot delete the account.",
    )


# Responses


class Subscription(CamelModel):
    tier: Literal["BASIC", "PRO"] = "BASIC"
    status: str | None = None
    current_period_start: datetime | None = None
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
    model_config = examples(
        {
            "status": "success",
            "message": "User registered successfully.",
            "userId": _USER_ID,
            "mobileNumber": _NUMBER,
            "data": {"user": _USER},
        }
    )

    status: Literal["success"] = "success"
    message: str
    user_id: str
    mobile_number: str
    data: UserData


class OtpData(CamelModel):
    expires_in: int = Field(description="Seconds until the code expires.")


class OtpSentOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "message": "OTP sent successfully.",
            "otp": "123456",
            "data": {"expiresIn": 300},
        }
    )

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
    model_config = examples(
        {
            "status": "success",
            "message": "OTP verified successfully.",
            "token": _TOKEN,
            "data": {"token": _TOKEN, "tokenType": "Bearer", "expiresIn": 86400},
        }
    )

    status: Literal["success"] = "success"
    message: str
    token: str
    data: TokenData


class MessageOut(CamelModel):
    model_config = examples(
        {"status": "success", "message": "Password has been reset. Please log in again."}
    )

    status: Literal["success"] = "success"
    message: str


class MeOut(CamelModel):
    model_config = examples({"status": "success", "data": {"user": _USER}})

    status: Literal["success"] = "success"
    data: UserData


class TokenStateData(CamelModel):
    valid_after: float | None


class TokenStateOut(CamelModel):
    status: Literal["success"] = "success"
    data: TokenStateData
