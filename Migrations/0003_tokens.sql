-- API tokens for the coordinator's HTTP API. A token is 32 random bytes written as 64 hex
-- digits and shown once; only the SHA-256 of that hex text is kept.

CREATE TABLE api_tokens (
    id bigserial PRIMARY KEY,
    sha256 bytea NOT NULL UNIQUE CHECK (length(sha256) = 32),
    role text NOT NULL CHECK (role IN ('submit', 'admin')),
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
