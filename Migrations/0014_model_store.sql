-- The farm's model store: models added with `farm models add` (their bytes live in the coordinator's
-- --model-store folder under their SHA-256), and which workers announced holding which of them in their caches.
CREATE TABLE models (
    name     text PRIMARY KEY CHECK (name <> '' AND octet_length(name) <= 256),
    sha256   text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size     bigint NOT NULL CHECK (size >= 0),
    kind     text NOT NULL CHECK (kind IN ('checkpoint', 'vae', 'lora', 'embedding', 'controlnet', 'upscaler')),
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX models_sha256 ON models (sha256);

-- Replaced as a whole for a worker each time it announces its cache (HELLO, or a heartbeat after a change).
CREATE TABLE worker_models (
    worker_id text NOT NULL,
    sha256    text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (worker_id, sha256)
);
CREATE INDEX worker_models_sha256 ON worker_models (sha256);
