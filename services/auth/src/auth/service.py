"""Auth use cases: sign-up, one-time codes, logins and passwords (sessions.py: tokens and
revocation). Each takes the Database and runs its own transactions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from asgi_correlation_id.context import correlation_id

from auth import metrics, otp, repository
from auth.context import AuthContext
from auth.phone import InvalidPhoneNumber, mask, normalise
from auth.repository import Challenge, User
from auth.sessions import issue_token, revoke_tokens, to_datetime
from auth.settings import Settings
from shared import outbox
from shared.db import Database, Transaction
from shared.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from shared.events import UserRegistered
from shared.tokens import AccessToken, now_ms

log = structlog.get_logger(__name__)

PRODUCER = "auth"
LOGIN = "login"
RESET = "reset"


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_in: int
    returned_to_client: bool


def mobile_number(raw: str, settings: Settings, field: str = "mobileNumber") -> str:
    try:
        return normalise(raw, settings.default_phone_region)
    except InvalidPhoneNumber as exc:
        raise ValidationFailed.on(field, str(exc)) from exc


async def signup(
    db: Database, ctx: AuthContext, raw_mobile: str, password: str | None, client_ip: str
) -> User:
    """A user whose number is not proven yet. A password given here is only pending: it
    logs in once a code sent to the number is verified together with it (verify_code)."""
    number = mobile_number(raw_mobile, ctx.settings)
    await ctx.throttle.signup(number, client_ip)
    pending_hash = await ctx.hashing.hash(password) if password else None
    async with db.transaction() as tx:
        user = await repository.insert_user(tx.conn, uuid.uuid4(), number, pending_hash)
        if user is None:
            raise Conflict(
                "User with this mobile number already exists.", code="mobile_number_taken"
            )
        await outbox.add(
            tx.conn,
            UserRegistered(
                user_id=user.id, mobile_number=user.mobile_number, registered_at=user.created_at
            ),
            producer=PRODUCER,
            correlation_id=correlation_id.get(),
        )
    log.info("auth.user_registered", user_id=str(user.id), mobile=mask(number))
    return user


async def issue_code(
    db: Database, ctx: AuthContext, raw_mobile: str, purpose: str, client_ip: str
) -> IssuedCode:
    number = mobile_number(raw_mobile, ctx.settings)
    await ctx.throttle.otp_send(number, client_ip)
    async with db.transaction() as tx:
        user = await repository.get_user_by_mobile(tx.conn, number)
        if user is None:
            message = (
                "User not found. Please create an account."
                if purpose == LOGIN
                else "User not found."
            )
            raise NotFound(message, code="user_not_found")
        code = otp.new_code()
        challenge_id = uuid.uuid4()
        expires_in = ctx.settings.otp_expiration_minutes * 60
        await repository.replace_challenge(
            tx.conn,
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
    metrics.OTPS_SENT.labels(purpose).inc()
    return IssuedCode(code, expires_in, ctx.sender.returns_code)


INVALID_CODE = "Invalid OTP."


async def check_code(
    tx: Transaction, ctx: AuthContext, user: User | None, purpose: str, code: str
) -> Challenge | AppError:
    result = await _checked_code(tx, ctx, user, purpose, code)
    if isinstance(result, AppError):
        metrics.VERIFICATION_FAILURES.labels(result.code).inc()
    return result


async def _checked_code(
    tx: Transaction, ctx: AuthContext, user: User | None, purpose: str, code: str
) -> Challenge | AppError:
    """The user's live challenge for ``purpose``, locked, when ``code`` is its code (the
    caller consumes it); otherwise the error to answer with. An unknown user gets the same
    answer as a known one without a live code. A wrong guess is recorded: the caller must
    commit before raising."""
    challenge = await repository.lock_challenge(tx.conn, user.id, purpose) if user else None
    if challenge is None or challenge.consumed_at is not None:
        return Unauthorized(INVALID_CODE, code="invalid_otp")
    if challenge.attempts >= otp.MAX_ATTEMPTS:
        return Unauthorized(
            "Too many wrong attempts for this OTP. Request a new one.", code="otp_attempts_exceeded"
        )
    if challenge.expires_at <= datetime.now(UTC):
        return Unauthorized("OTP expired.", code="otp_expired")
    if not otp.matches(ctx.settings.jwt_secret, str(challenge.id), code, challenge.code_hash):
        return await _wrong_guess(tx, challenge, INVALID_CODE, "invalid_otp")
    return challenge


async def _wrong_guess(tx: Transaction, challenge: Challenge, message: str, code: str) -> AppError:
    """Counts a failed use of the code; its last allowed one kills it."""
    attempts = await repository.record_failed_attempt(tx.conn, challenge.id)
    left = otp.MAX_ATTEMPTS - attempts
    log.info(
        "auth.otp_wrong",
        user_id=str(challenge.user_id),
        purpose=challenge.purpose,
        attempts=attempts,
    )
    if left <= 0:
        return Unauthorized(
            f"{message} That was the last attempt; request a new code.",
            code="otp_attempts_exceeded",
        )
    return Unauthorized(f"{message} {left} attempt(s) left.", code=code)


async def verify_code(
    db: Database,
    ctx: AuthContext,
    raw_mobile: str,
    code: str,
    password: str | None,
    client_ip: str,
) -> AccessToken:
    """Log in with a code. It proves the number: a password chosen at signup becomes the
    password if ``password`` is that password, and is dropped otherwise, so a password set
    by someone who never held the phone cannot survive its owner's first sign-in."""
    number = mobile_number(raw_mobile, ctx.settings)
    attempt = await ctx.throttle.code_attempt(number, client_ip)
    async with db.transaction() as tx:
        user = await repository.lock_user_by_mobile(tx.conn, number)
        result = await check_code(tx, ctx, user, LOGIN, code)
        if isinstance(result, Challenge) and user is not None:
            confirmed = None
            if user.pending_password_hash and password is not None:
                if await ctx.hashing.verify(user.pending_password_hash, password):
                    confirmed = user.pending_password_hash
                else:
                    result = await _wrong_guess(
                        tx,
                        result,
                        "The password is not the one chosen at sign-up.",
                        "invalid_credentials",
                    )
            if isinstance(result, Challenge):
                await repository.consume_challenge(tx.conn, result.id)
                await repository.record_proof(tx.conn, user.id, confirmed)
                _log_proof(user, confirmed)
    # Raised after the commit, so a wrong guess is counted.
    if isinstance(result, AppError):
        raise result
    assert user is not None
    await attempt.forgive()
    log.info("auth.logged_in", user_id=str(user.id), method="otp")
    return issue_token(ctx, user, now_ms())


def _log_proof(user: User, confirmed: str | None) -> None:
    if user.mobile_verified_at is None:
        log.info("auth.number_proven", user_id=str(user.id))
    if confirmed:
        log.info("auth.pending_password_confirmed", user_id=str(user.id))
    elif user.pending_password_hash:
        log.info("auth.pending_password_dropped", user_id=str(user.id))


async def login(
    db: Database, ctx: AuthContext, raw_mobile: str, password: str, client_ip: str
) -> AccessToken:
    """Log in with a confirmed password. The attempt is counted before the password is
    checked, and forgiven only when it succeeds."""
    number = mobile_number(raw_mobile, ctx.settings)
    attempt = await ctx.throttle.login_attempt(number, client_ip)
    async with db.transaction() as tx:
        user = await repository.get_user_by_mobile(tx.conn, number)
    invalid = Unauthorized("Invalid mobile number or password.", code="invalid_credentials")
    if user is not None and user.password_hash is None and user.pending_password_hash:
        if await ctx.hashing.verify(user.pending_password_hash, password):
            raise Forbidden(
                "This password is not confirmed yet. Ask for a code (send-otp), then send "
                "it to verify-otp together with this password.",
                code="password_not_confirmed",
            )
        raise invalid
    if not await ctx.hashing.verify(user.password_hash if user else None, password):
        raise invalid
    assert user is not None
    await attempt.forgive()
    log.info("auth.logged_in", user_id=str(user.id), method="password")
    return issue_token(ctx, user, now_ms())


async def reset_password(
    db: Database,
    ctx: AuthContext,
    raw_mobile: str,
    code: str,
    new_password: str,
    client_ip: str,
) -> None:
    """Set the password with a reset code; every earlier token stops working. The new
    password is hashed only once the code is known to be right."""
    number = mobile_number(raw_mobile, ctx.settings)
    attempt = await ctx.throttle.code_attempt(number, client_ip)
    async with db.transaction() as tx:
        user = await repository.lock_user_by_mobile(tx.conn, number)
        result = await check_code(tx, ctx, user, RESET, code)
        if isinstance(result, Challenge) and user is not None:
            password_hash = await ctx.hashing.hash(new_password)
            await repository.consume_challenge(tx.conn, result.id)
            at = now_ms()
            await repository.set_password(tx.conn, user.id, password_hash, to_datetime(at))
            await revoke_tokens(tx, ctx, user.id, at)
    if isinstance(result, AppError):
        raise result
    assert user is not None
    await attempt.forgive()
    log.info("auth.password_reset", user_id=str(user.id))


async def change_password(
    db: Database,
    ctx: AuthContext,
    user_id: uuid.UUID,
    new_password: str,
    current_password: str | None,
    code: str | None,
    client_ip: str,
) -> AccessToken:
    """Sets the password and revokes every earlier token; returns a fresh token for the
    caller, whose own token is one of the revoked ones.

    A token alone is not enough: the current password proves the caller, or, for an account
    without one, a reset code sent to the number now (a stolen token cannot set a password
    that outlives its revocation)."""
    async with db.transaction() as tx:
        user = await repository.lock_user(tx.conn, user_id)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        failure: AppError | None = None
        if user.password_hash is not None:
            if not current_password:
                raise ValidationFailed.on("currentPassword", "Enter your current password.")
            attempt = await ctx.throttle.login_attempt(user.mobile_number, client_ip)
            if not await ctx.hashing.verify(user.password_hash, current_password):
                failure = Unauthorized("The current password is wrong.", code="invalid_credentials")
        else:
            if not code:
                raise ValidationFailed.on(
                    "otp",
                    "This account has no password yet: ask for a code with forgot-password "
                    "and send it here as otp.",
                )
            attempt = await ctx.throttle.code_attempt(user.mobile_number, client_ip)
            result = await check_code(tx, ctx, user, RESET, code)
            if isinstance(result, AppError):
                failure = result
            else:
                await repository.consume_challenge(tx.conn, result.id)
        if failure is None:
            password_hash = await ctx.hashing.hash(new_password)
            at = now_ms()
            await repository.set_password(tx.conn, user.id, password_hash, to_datetime(at))
            await revoke_tokens(tx, ctx, user.id, at)
    if failure is not None:
        raise failure
    await attempt.forgive()
    log.info("auth.password_changed", user_id=str(user.id))
    return issue_token(ctx, user, at)
