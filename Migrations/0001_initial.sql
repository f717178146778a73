-- The farm's first schema: jobs split into tasks, their images, the workers
-- that render them, and an append-only audit trail.

CREATE TABLE jobs (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    owner         text NOT NULL DEFAULT '',
    priority      integer NOT NULL DEFAULT 0,
    model         text NOT NULL,
    max_attempts  integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    state         text NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'paused', 'cancelled', 'done')),
    task_count    integer NOT NULL DEFAULT 0 CHECK (task_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

CREATE TABLE tasks (
    id            bigserial PRIMARY KEY,
    job_id        bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    index         integer NOT NULL CHECK (index >= 0),
    parameters    jsonb NOT NULL,
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempt       integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    lease_owner   text,
    lease_expires timestamptz,
    step          integer NOT NULL DEFAULT 0,
    total_steps   integer NOT NULL DEFAULT 0,
    error_kind    text CHECK (error_kind IN ('input', 'host')),
    error_message text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    UNIQUE (job_id, index),
    -- A running task always has a lease; a queued one never does.
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires IS NOT NULL))
);

-- The dispatch query walks queued tasks by job priority and age.
CREATE INDEX tasks_queued ON tasks (job_id, index) WHERE state = 'queued';
CREATE INDEX tasks_running_lease ON tasks (lease_expires) WHERE state = 'running';

CREATE TABLE images (
    task_id      bigint PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    png          bytea NOT NULL,
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    seed         numeric(20, 0) NOT NULL,
    sha256       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workers (
    id             text PRIMARY KEY,
    host           text NOT NULL,
    models         text[] NOT NULL DEFAULT '{}',
    slots          integer NOT NULL DEFAULT 1 CHECK (slots >= 1),
    state          text NOT NULL DEFAULT 'online'
                   CHECK (state IN ('online', 'draining', 'cordoned', 'lost', 'offline')),
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    first_seen     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind       text NOT NULL,
    job_id     bigint,
    task_id    bigint,
    worker_id  text,
    attempt    integer,
    detail     text NOT NULL DEFAULT ''
);

-- The audit trail is append-only.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END $$;
CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
