-- Where results live and for how long, and who is told when a job ends.
--
-- Images may live in a directory the coordinator writes (`--image-dir`): the row then keeps the file's path and
-- size instead of the PNG. Finished jobs lose their tasks, images and events to retention (`farm prune`, a job's
-- `expires_after`); the job's row stays, marked pruned, so that its history (counts, name, owner) remains. A job
-- that names a `notify` URL gets one row in the notifications outbox when it ends, which the coordinator sends.

ALTER TABLE images ALTER COLUMN png DROP NOT NULL;
ALTER TABLE images ADD COLUMN path text;
ALTER TABLE images ADD COLUMN bytes bigint;
ALTER TABLE images ADD CONSTRAINT images_png_or_path CHECK ((png IS NULL) <> (path IS NULL));
-- Retention unlinks a file only when no other image (the same PNG, content-addressed) still names it.
CREATE INDEX images_path ON images (path) WHERE path IS NOT NULL;

ALTER TABLE jobs ADD COLUMN expires_after interval CHECK (expires_after > interval '0');
ALTER TABLE jobs ADD COLUMN notify_url text CHECK (length(notify_url) BETWEEN 1 AND 2000);
ALTER TABLE jobs ADD COLUMN pruned_at timestamptz;
-- Finished jobs that retention has not yet pruned, oldest first.
CREATE INDEX jobs_prunable ON jobs (finished_at) WHERE state IN ('done', 'cancelled') AND pruned_at IS NULL;
-- A job's events, found without reading the whole trail (retention deletes them by job).
CREATE INDEX events_job ON events (job_id) WHERE job_id IS NOT NULL;

-- The append-only rules yield to the retention path alone: JobStore's prune sets `farm.retention` for its own
-- transactions (SET LOCAL), nothing else does.
CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('farm.retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'events are append-only';
END $$;

CREATE OR REPLACE FUNCTION tasks_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('farm.retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM deleted d JOIN jobs j ON j.id = d.job_id) THEN
        RAISE EXCEPTION 'tasks are not deleted one by one; cancel them, or delete their job';
    END IF;
    RETURN NULL;
END $$;

-- The outbox of job-end notifications: one row per job end, sent (POST, JSON) until the receiver answers 2xx or
-- a day has passed. A sender claims due rows with FOR UPDATE SKIP LOCKED and moves `next_at` on as its lease.
CREATE TABLE notifications (
    id           bigserial PRIMARY KEY,
    job_id       bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    url          text NOT NULL,
    payload      jsonb NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    given_up_at  timestamptz,
    last_error   text
);
CREATE INDEX notifications_due ON notifications (next_at) WHERE delivered_at IS NULL AND given_up_at IS NULL;

-- A job that ends (done, or cancelled) with a notify URL queues its notification in the same transaction as the
-- change, so that no end is lost or told twice. A done job with failed tasks is told as `failed`; a cancelled
-- job's queued tasks count as cancelled (as the API shows them from the cancel's first moment).
CREATE FUNCTION jobs_notify_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (job_id, url, payload)
    VALUES (NEW.id, NEW.notify_url, json_build_object(
        'job', NEW.id, 'name', NEW.name,
        'state', CASE WHEN NEW.state = 'cancelled' THEN 'cancelled' WHEN NEW.failed_count > 0 THEN 'failed' ELSE 'done' END,
        'tasks', NEW.task_count,
        'counts', json_build_object(
            'queued', CASE WHEN NEW.state = 'cancelled' THEN 0 ELSE NEW.queued_count END, 'running', NEW.running_count,
            'done', NEW.done_count, 'failed', NEW.failed_count,
            'cancelled', NEW.cancelled_count + CASE WHEN NEW.state = 'cancelled' THEN NEW.queued_count ELSE 0 END),
        'finished', coalesce(NEW.finished_at, now())::text));
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_end AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (NEW.notify_url IS NOT NULL AND NEW.state IN ('done', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION jobs_notify_end();
