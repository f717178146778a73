-- The full queue: per-state counts kept on jobs by statement-level triggers, retry
-- backoff, content-addressed input blobs, a per-job worker blocklist, and what a
-- worker can run (max image size).

ALTER TABLE jobs
    ADD COLUMN defaults jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN queued_count integer NOT NULL DEFAULT 0 CHECK (queued_count >= 0),
    ADD COLUMN running_count integer NOT NULL DEFAULT 0 CHECK (running_count >= 0),
    ADD COLUMN done_count integer NOT NULL DEFAULT 0 CHECK (done_count >= 0),
    ADD COLUMN failed_count integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    ADD COLUMN cancelled_count integer NOT NULL DEFAULT 0 CHECK (cancelled_count >= 0),
    ADD CONSTRAINT jobs_counts_add_up
        CHECK (queued_count + running_count + done_count + failed_count + cancelled_count = task_count);

-- Tasks created by 0001 (none in a fresh database) are counted once here.
UPDATE jobs j SET
    queued_count = (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued'),
    running_count = (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'running'),
    done_count = (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'done'),
    failed_count = (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'failed'),
    cancelled_count = (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'cancelled'),
    task_count = (SELECT count(*) FROM tasks t WHERE t.job_id = j.id);

ALTER TABLE tasks
    ADD COLUMN not_before timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN pixels integer GENERATED ALWAYS AS ((parameters->>'width')::integer * (parameters->>'height')::integer) STORED,
    ADD COLUMN model text GENERATED ALWAYS AS (parameters->>'model') STORED;

DROP INDEX tasks_queued;
CREATE INDEX tasks_queued ON tasks (job_id, index) WHERE state = 'queued';
CREATE INDEX tasks_lease_owner ON tasks (lease_owner) WHERE state = 'running';

ALTER TABLE images ADD COLUMN parameters jsonb NOT NULL DEFAULT '{}';

ALTER TABLE workers ADD COLUMN max_pixels integer NOT NULL DEFAULT 4194304 CHECK (max_pixels > 0);

-- Init images, masks and control images, stored once however many tasks use them.
CREATE TABLE input_blobs (
    sha256     bytea PRIMARY KEY CHECK (length(sha256) = 32),
    data       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (sha256(data) = sha256)
);

CREATE TABLE task_inputs (
    task_id bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    role    text NOT NULL CHECK (role IN ('init_image', 'mask', 'control_image')),
    sha256  bytea NOT NULL REFERENCES input_blobs(sha256),
    PRIMARY KEY (task_id, role, sha256)
);

-- Host failures of a worker within a job; at the limit the worker gets no more of its tasks.
CREATE TABLE job_worker_failures (
    job_id    bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    worker_id text NOT NULL,
    failures  integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    blocked   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, worker_id)
);

-- Counts follow every change of a task's state. Inserts are counted once per statement
-- (a COPY of 100,000 tasks updates its job once, not 100,000 times).
CREATE FUNCTION tasks_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs j SET
        task_count = task_count + d.total,
        queued_count = queued_count + d.queued, running_count = running_count + d.running,
        done_count = done_count + d.done, failed_count = failed_count + d.failed,
        cancelled_count = cancelled_count + d.cancelled
    FROM (SELECT job_id, count(*) AS total,
                 count(*) FILTER (WHERE state = 'queued') AS queued, count(*) FILTER (WHERE state = 'running') AS running,
                 count(*) FILTER (WHERE state = 'done') AS done, count(*) FILTER (WHERE state = 'failed') AS failed,
                 count(*) FILTER (WHERE state = 'cancelled') AS cancelled
          FROM inserted GROUP BY job_id) d
    WHERE j.id = d.job_id;
    RETURN NULL;
END $$;

-- A state change moves one count; per row, because single-task changes (claim, complete)
-- are the hot path and a statement-level trigger costs milliseconds to plan each time.
CREATE FUNCTION tasks_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET
        queued_count = queued_count + (NEW.state = 'queued')::int - (OLD.state = 'queued')::int,
        running_count = running_count + (NEW.state = 'running')::int - (OLD.state = 'running')::int,
        done_count = done_count + (NEW.state = 'done')::int - (OLD.state = 'done')::int,
        failed_count = failed_count + (NEW.state = 'failed')::int - (OLD.state = 'failed')::int,
        cancelled_count = cancelled_count + (NEW.state = 'cancelled')::int - (OLD.state = 'cancelled')::int
    WHERE id = NEW.job_id;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_inserted();
CREATE TRIGGER tasks_counts_update AFTER UPDATE OF state ON tasks
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION tasks_count_changed();
-- Jobs delete their tasks by cascade; deleting single tasks would break the counts.
CREATE FUNCTION tasks_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM deleted d JOIN jobs j ON j.id = d.job_id) THEN
        RAISE EXCEPTION 'tasks are not deleted one by one; cancel them, or delete their job';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_no_single_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION tasks_no_delete();
