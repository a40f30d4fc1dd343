"""Auth use cases. Each takes a unit of work and owns its transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from asgi_correlation_id.context import correlation_id
from redis.asyncio import Redis
from redis.exceptions import RedisError

from auth import otp, passwords, repository
from auth.delivery import OtpSender
from auth.phone import InvalidPhoneNumber, mask, normalise
from auth.repository import User
from auth.settings import Settings
from auth.throttle import Throttle
from shared import outbox
from shared.db import UnitOfWork
from shared.errors import (
    AppError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from shared.events import UserRegistered
from shared.tiers import SubscriptionState, subscription_state
from shared.tokens import AccessToken, issue_access_token, now_ms, token_state_key

log = structlog.get_logger(__name__)

PRODUCER = "auth"
LOGIN = "login"
RESET = "reset"


@dataclass
class AuthContext:
    """What the use cases need besides the unit of work; built once per process."""

    settings: Settings
    redis: Redis
    throttle: Throttle
    sender: OtpSender


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_in: int
    returned_to_client: bool


def _to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def mobile_number(raw: str, settings: Settings, field: str = "mobileNumber") -> str:
    try:
        return normalise(raw, settings.default_phone_region)
    except InvalidPhoneNumber as exc:
        raise ValidationFailed.on(field, str(exc)) from exc


def _issue_token(ctx: AuthContext, user: User, now: float) -> AccessToken:
    return issue_access_token(
        ctx.settings.jwt_secret,
        str(user.id),
        ttl_seconds=ctx.settings.jwt_expires_in_seconds,
        mobile_number=user.mobile_number,
        now=now,
    )


async def _revoke_tokens(uow: UnitOfWork, ctx: AuthContext, user_id: uuid.UUID, at: float) -> None:
    """Tokens issued before ``at`` stop working.

    The gateway caches each user's "valid after" time in Redis. The cached value is
    deleted before the new time is written (so no stale value survives this transaction)
    and set again once it committed; the gateway only fills a missing key (SET NX), so
    it cannot overwrite the newer value.
    """
    key = token_state_key(str(user_id))
    try:
        await ctx.redis.delete(key)
    except RedisError as exc:
        log.error("auth.token_state_unavailable", error=repr(exc))
        raise ServiceUnavailable() from exc
    await repository.set_tokens_valid_after(uow.conn, user_id, _to_datetime(at))

    async def publish() -> None:
        await ctx.redis.set(key, f"{at:.3f}", ex=ctx.settings.jwt_expires_in_seconds)

    uow.after_commit(publish)


async def signup(uow: UnitOfWork, ctx: AuthContext, raw_mobile: str, password: str | None) -> User:
    number = mobile_number(raw_mobile, ctx.settings)
    password_hash = await passwords.hash_password(password) if password else None
    async with uow:
        user = await repository.insert_user(uow.conn, uuid.uuid4(), number, password_hash)
        if user is None:
            raise Conflict(
                "User with this mobile number already exists.", code="mobile_number_taken"
            )
        await outbox.add(
            uow.conn,
            UserRegistered(
                user_id=user.id, mobile_number=user.mobile_number, registered_at=user.created_at
            ),
            producer=PRODUCER,
            correlation_id=correlation_id.get(),
        )
    log.info("auth.user_registered", user_id=str(user.id), mobile=mask(number))
    return user


async def issue_code(
    uow: UnitOfWork, ctx: AuthContext, raw_mobile: str, purpose: str, client_ip: str
) -> IssuedCode:
    number = mobile_number(raw_mobile, ctx.settings)
    await ctx.throttle.otp_send_from_ip(client_ip)
    async with uow:
        user = await repository.get_user_by_mobile(uow.conn, number)
        if user is None:
            message = (
                "User not found. Please create an account."
                if purpose == LOGIN
                else "User not found."
            )
            raise NotFound(message, code="user_not_found")
        await ctx.throttle.otp_send_to_number(number)
        code = otp.new_code()
        challenge_id = uuid.uuid4()
        expires_in = ctx.settings.otp_expiration_minutes * 60
        await repository.replace_challenge(
            uow.conn,
            user.id,
            purpose,
            challenge_id,
            otp.hash_code(ctx.settings.jwt_secret, str(challenge_id), code),
            datetime.now(UTC) + timedelta(seconds=expires_in),
        )
        # Delivered before commit: if delivery fails the transaction rolls back and the
        # previous code (if any) keeps working.
        await ctx.sender.send(number, code, purpose)
    log.info("auth.otp_issued", user_id=str(user.id), purpose=purpose)
    return IssuedCode(code, expires_in, ctx.sender.returns_code)


async def _consume_code(
    uow: UnitOfWork, ctx: AuthContext, user: User, purpose: str, code: str
) -> AppError | None:
    """None when ``code`` is the user's live code for ``purpose`` (now used up); otherwise the
    error to answer with. A wrong guess is recorded; the caller must commit it."""
    challenge = await repository.lock_challenge(uow.conn, user.id, purpose)
    if challenge is None or challenge.consumed_at is not None:
        return Unauthorized("Invalid OTP.", code="invalid_otp")
    if challenge.attempts >= otp.MAX_ATTEMPTS:
        return Unauthorized(
            "Too many wrong attempts for this OTP. Request a new one.", code="otp_attempts_exceeded"
        )
    if challenge.expires_at <= datetime.now(UTC):
        return Unauthorized("OTP expired.", code="otp_expired")
    if not otp.matches(ctx.settings.jwt_secret, str(challenge.id), code, challenge.code_hash):
        attempts = await repository.record_failed_attempt(uow.conn, challenge.id)
        left = otp.MAX_ATTEMPTS - attempts
        log.info("auth.otp_wrong", user_id=str(user.id), purpose=purpose, attempts=attempts)
        if left <= 0:
            return Unauthorized(
                "Invalid OTP. That was the last attempt; request a new one.",
                code="otp_attempts_exceeded",
            )
        return Unauthorized(f"Invalid OTP. {left} attempt(s) left.", code="invalid_otp")
    await repository.consume_challenge(uow.conn, challenge.id)
    return None


async def verify_code(uow: UnitOfWork, ctx: AuthContext, raw_mobile: str, code: str) -> AccessToken:
    number = mobile_number(raw_mobile, ctx.settings)
    async with uow:
        user = await repository.get_user_by_mobile(uow.conn, number)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        failure = await _consume_code(uow, ctx, user, LOGIN, code)
    # Raised after the commit, so a wrong guess is counted.
    if failure is not None:
        raise failure
    log.info("auth.logged_in", user_id=str(user.id), method="otp")
    return _issue_token(ctx, user, now_ms())


async def login(uow: UnitOfWork, ctx: AuthContext, raw_mobile: str, password: str) -> AccessToken:
    number = mobile_number(raw_mobile, ctx.settings)
    await ctx.throttle.check_login_allowed(number)
    async with uow:
        user = await repository.get_user_by_mobile(uow.conn, number)
    ok = await passwords.verify_password(user.password_hash if user else None, password)
    if user is None or not ok:
        await ctx.throttle.record_login_failure(number)
        raise Unauthorized("Invalid mobile number or password.", code="invalid_credentials")
    log.info("auth.logged_in", user_id=str(user.id), method="password")
    return _issue_token(ctx, user, now_ms())


async def reset_password(
    uow: UnitOfWork, ctx: AuthContext, raw_mobile: str, code: str, new_password: str
) -> None:
    number = mobile_number(raw_mobile, ctx.settings)
    password_hash = await passwords.hash_password(new_password)
    async with uow:
        user = await repository.get_user_by_mobile(uow.conn, number)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        failure = await _consume_code(uow, ctx, user, RESET, code)
        if failure is None:
            at = now_ms()
            await repository.set_password(uow.conn, user.id, password_hash, _to_datetime(at))
            await _revoke_tokens(uow, ctx, user.id, at)
    if failure is not None:
        raise failure
    log.info("auth.password_reset", user_id=str(user.id))


async def change_password(
    uow: UnitOfWork,
    ctx: AuthContext,
    user_id: uuid.UUID,
    new_password: str,
    current_password: str | None,
) -> AccessToken:
    """Sets the password and revokes every earlier token; returns a fresh token for the
    caller, whose own token is one of the revoked ones."""
    password_hash = await passwords.hash_password(new_password)
    async with uow:
        user = await repository.lock_user(uow.conn, user_id)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        if user.password_hash is not None:
            if not current_password:
                raise ValidationFailed.on("currentPassword", "Enter your current password.")
            if not await passwords.verify_password(user.password_hash, current_password):
                raise Unauthorized("The current password is wrong.", code="invalid_credentials")
        at = now_ms()
        await repository.set_password(uow.conn, user.id, password_hash, _to_datetime(at))
        await _revoke_tokens(uow, ctx, user.id, at)
    log.info("auth.password_changed", user_id=str(user.id))
    return _issue_token(ctx, user, at)


async def logout(uow: UnitOfWork, ctx: AuthContext, user_id: uuid.UUID) -> None:
    """Revokes every token issued so far for the user (sign out everywhere)."""
    async with uow:
        user = await repository.lock_user(uow.conn, user_id)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        await _revoke_tokens(uow, ctx, user.id, now_ms())
    log.info("auth.logged_out", user_id=str(user_id))


async def get_user(uow: UnitOfWork, user_id: uuid.UUID) -> User:
    async with uow:
        user = await repository.get_user(uow.conn, user_id)
    if user is None:
        raise NotFound("User not found.", code="user_not_found")
    return user


async def get_user_with_subscription(
    uow: UnitOfWork, user_id: uuid.UUID
) -> tuple[User, SubscriptionState | None]:
    async with uow:
        user = await repository.get_user(uow.conn, user_id)
        subscription = await subscription_state(uow.conn, user_id)
    if user is None:
        raise NotFound("User not found.", code="user_not_found")
    return user, subscription


async def tokens_valid_after(uow: UnitOfWork, user_id: uuid.UUID) -> float | None:
    user = await get_user(uow, user_id)
    return user.tokens_valid_after.timestamp() if user.tokens_valid_after else None
