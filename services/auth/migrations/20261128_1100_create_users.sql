-- Users and their one-time-code challenges.

CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    mobile_number       text NOT NULL,
    password_hash       text,
    -- Tokens issued before this instant are revoked (logout, password change or reset).
    tokens_valid_after  timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_mobile_number_key UNIQUE (mobile_number),
    CONSTRAINT users_mobile_number_e164 CHECK (mobile_number ~ '^\+[1-9][0-9]{6,14}$')
);

-- One live challenge per user and purpose: issuing a new code replaces the old one.
CREATE TABLE otp_challenges (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose      text NOT NULL,
    id           uuid NOT NULL,
    code_hash    text NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    expires_at   timestamptz NOT NULL,
    consumed_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT otp_challenges_pkey PRIMARY KEY (user_id, purpose),
    CONSTRAINT otp_challenges_purpose_check CHECK (purpose IN ('login', 'reset')),
    CONSTRAINT otp_challenges_attempts_check CHECK (attempts >= 0)
);
