"""Auth routes: parse the request, call the use case, shape the response."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from auth import deletion, service, sessions
from auth.context import AuthContext
from auth.repository import User
from auth.schemas import (
    ChangePasswordIn,
    DeleteAccountIn,
    LoginIn,
    MeOut,
    MessageOut,
    MobileIn,
    OtpData,
    OtpSentOut,
    ResetPasswordIn,
    SignupIn,
    SignupOut,
    Subscription,
    TokenData,
    TokenOut,
    TokenStateData,
    TokenStateOut,
    UserData,
    UserOut,
    VerifyOtpIn,
)
from shared.db import Database, Db
from shared.errors import NotFound
from shared.schemas import error_responses
from shared.security import CurrentUserId, from_app_state
from shared.tiers import SubscriptionState
from shared.tokens import AccessToken

Ctx = Annotated[AuthContext, Depends(from_app_state("auth"))]


def client_ip(request: Request) -> str:
    """The caller's address as uvicorn resolved it: from X-Forwarded-For only when the peer
    is a trusted proxy (FORWARDED_ALLOW_IPS: the gateway), else the peer itself."""
    return request.client.host if request.client else "unknown"


def _user_out(user: User, subscription: SubscriptionState | None = None) -> UserOut:
    current = Subscription()
    if subscription is not None:
        current = Subscription(
            tier=subscription.tier(datetime.now(UTC)),
            status=subscription.status,
            current_period_start=subscription.current_period_start,
            current_period_end=subscription.current_period_end,
            cancel_at_period_end=subscription.cancel_at_period_end,
        )
    return UserOut(
        id=str(user.id),
        mobile_number=user.mobile_number,
        created_at=user.created_at,
        updated_at=user.updated_at,
        current_subscription=current,
    )


def _token_out(message: str, token: AccessToken) -> TokenOut:
    return TokenOut(
        message=message,
        token=token.token,
        data=TokenData(token=token.token, expires_in=token.expires_in),
    )


def _path_user_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("User not found.", code="user_not_found") from None


router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post(
    "/auth/signup",
    status_code=201,
    response_model=SignupOut,
    responses=error_responses(400, 409, 413, 429, 503),
)
async def signup(body: SignupIn, request: Request, db: Db, ctx: Ctx) -> SignupOut:
    user = await service.signup(db, ctx, body.mobile_number, body.password, client_ip(request))
    return SignupOut(
        message="User registered successfully.",
        user_id=str(user.id),
        mobile_number=user.mobile_number,
        data=UserData(user=_user_out(user)),
    )


async def _send_code(
    request: Request, db: Database, ctx: AuthContext, raw_mobile: str, purpose: str, message: str
) -> OtpSentOut:
    issued = await service.issue_code(db, ctx, raw_mobile, purpose, client_ip(request))
    return OtpSentOut(
        message=message,
        otp=issued.code if issued.returned_to_client else None,
        data=OtpData(expires_in=issued.expires_in),
    )


@router.post(
    "/auth/send-otp",
    response_model=OtpSentOut,
    response_model_exclude_none=True,
    responses=error_responses(400, 404, 429, 503),
)
async def send_otp(body: MobileIn, request: Request, db: Db, ctx: Ctx) -> OtpSentOut:
    return await _send_code(
        request, db, ctx, body.mobile_number, service.LOGIN, "OTP sent successfully."
    )


@router.post(
    "/auth/verify-otp", response_model=TokenOut, responses=error_responses(400, 401, 429, 503)
)
async def verify_otp(body: VerifyOtpIn, request: Request, db: Db, ctx: Ctx) -> TokenOut:
    """Log in with a code. An unknown number answers like a wrong code. ``password``
    confirms the password chosen at sign-up; a code without it drops that password."""
    token = await service.verify_code(
        db, ctx, body.mobile_number, body.otp, body.password, client_ip(request)
    )
    return _token_out("OTP verified successfully.", token)


@router.post(
    "/auth/login", response_model=TokenOut, responses=error_responses(400, 401, 403, 429, 503)
)
async def login(body: LoginIn, request: Request, db: Db, ctx: Ctx) -> TokenOut:
    """Log in with a password confirmed by a code (403 ``password_not_confirmed`` before)."""
    token = await service.login(db, ctx, body.mobile_number, body.password, client_ip(request))
    return _token_out("Logged in successfully.", token)


@router.post(
    "/auth/forgot-password",
    response_model=OtpSentOut,
    response_model_exclude_none=True,
    responses=error_responses(400, 404, 429, 503),
)
async def forgot_password(body: MobileIn, request: Request, db: Db, ctx: Ctx) -> OtpSentOut:
    return await _send_code(
        request,
        db,
        ctx,
        body.mobile_number,
        service.RESET,
        "OTP for password reset sent successfully.",
    )


@router.post(
    "/auth/reset-password",
    response_model=MessageOut,
    responses=error_responses(400, 401, 429, 503),
)
async def reset_password(body: ResetPasswordIn, request: Request, db: Db, ctx: Ctx) -> MessageOut:
    await service.reset_password(
        db, ctx, body.mobile_number, body.otp, body.new_password, client_ip(request)
    )
    return MessageOut(message="Password has been reset. Please log in again.")


@router.post(
    "/auth/change-password",
    response_model=TokenOut,
    responses=error_responses(400, 401, 404, 429, 503),
)
async def change_password(
    body: ChangePasswordIn, request: Request, user_id: CurrentUserId, db: Db, ctx: Ctx
) -> TokenOut:
    """Needs ``currentPassword``, or for an account without a password a code from
    forgot-password as ``otp``."""
    token = await service.change_password(
        db,
        ctx,
        user_id,
        body.new_password,
        body.current_password,
        body.otp,
        client_ip(request),
    )
    return _token_out(
        "Password changed successfully. Other sessions were logged out; use this new token.",
        token,
    )


@router.post("/auth/logout", response_model=MessageOut, responses=error_responses(401))
async def logout(user_id: CurrentUserId, db: Db, ctx: Ctx) -> MessageOut:
    await sessions.logout(db, ctx, user_id)
    return MessageOut(message="Logged out. Every session of this account has been signed out.")


async def _me(user_id: CurrentUserId, db: Db) -> MeOut:
    user, subscription = await sessions.get_user_with_subscription(db, user_id)
    return MeOut(data=UserData(user=_user_out(user, subscription)))


router.add_api_route(
    "/auth/me",
    _me,
    methods=["GET"],
    response_model=MeOut,
    responses=error_responses(401, 404),
    name="auth_me",
)
router.add_api_route(
    "/user/me",
    _me,
    methods=["GET"],
    response_model=MeOut,
    responses=error_responses(401, 404),
    name="user_me",
    tags=["user"],
)


@router.delete(
    "/user/me",
    response_model=MessageOut,
    responses=error_responses(400, 401, 404, 429, 503),
    tags=["user"],
)
async def delete_account(
    body: DeleteAccountIn, request: Request, user_id: CurrentUserId, db: Db, ctx: Ctx
) -> MessageOut:
    """Deletes the account and everything of it, in every service (UserDeleted): chats,
    usage, the Pro subscription (cancelled at once). Needs a fresh code from send-otp as
    ``otp``. Every token of the account stops working."""
    await deletion.delete_account(db, ctx, user_id, body.otp, client_ip(request))
    return MessageOut(message="Your account and its chats have been deleted.")


# Not routed by the gateway: the gateway asks here when its cache of a user's
# "tokens valid after" time is empty.
internal = APIRouter(prefix="/internal", include_in_schema=False)


@internal.get("/users/{user_id}/token-state", response_model=TokenStateOut)
async def token_state(user_id: str, db: Db) -> TokenStateOut:
    valid_after = await sessions.tokens_valid_after(db, _path_user_id(user_id))
    return TokenStateOut(data=TokenStateData(valid_after=valid_after))
