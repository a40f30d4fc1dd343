-- A password logs in only for a number proven by a code (DESIGN §7).

ALTER TABLE users
    -- When a code sent to the number was first used (verify-otp, reset, change-password).
    ADD COLUMN mobile_verified_at timestamptz,
    -- A password chosen at signup, before any proof that the caller owns the number. It
    -- never logs in: verify-otp with a code AND this password makes it the password; a
    -- code without it drops it (the owner's first sign-in ends a stranger's password).
    ADD COLUMN pending_password_hash text;

-- A number whose code was used is proven.
UPDATE users AS u
   SET mobile_verified_at = c.first_use
  FROM (SELECT user_id, min(consumed_at) AS first_use
          FROM otp_challenges
         WHERE consumed_at IS NOT NULL
         GROUP BY user_id) AS c
 WHERE u.id = c.user_id;

-- Passwords stored so far were never tied to a proof (signup took one from anyone): each
-- becomes pending, confirmed by its owner's next sign-in with a code and that password.
UPDATE users
   SET pending_password_hash = password_hash, password_hash = NULL
 WHERE password_hash IS NOT NULL;
