-- API tokens. The secret is shown once, at creation, and never stored: only its SHA-256
-- is kept (a token carries 256 random bits, so a fast hash is enough; nothing to salt).
-- An admin token may do everything; a user token only reads and writes its own user_id.
CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    role         text NOT NULL CHECK (role IN ('admin', 'user')),
    user_id      uuid,
    token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz,
    -- A user token names its user; an admin token names none.
    CHECK ((role = 'user') = (user_id IS NOT NULL))
);
