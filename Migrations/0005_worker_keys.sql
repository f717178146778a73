-- The coordinator's allow-list of worker CURVE public keys (Z85, 40 characters). A worker
-- whose key is not here, or is revoked, fails the ZeroMQ handshake.

CREATE TABLE worker_keys (
    public_key text PRIMARY KEY CHECK (length(public_key) = 40),
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
