-- When each task last became dispatchable (queued, and past any retry backoff), so that
-- the coordinator can report how long tasks wait for a worker (farm_dispatch_latency_seconds).
ALTER TABLE tasks ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION tasks_queued_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.queued_at = greatest(now(), NEW.not_before);
    RETURN NEW;
END $$;

CREATE TRIGGER tasks_queued_at BEFORE UPDATE OF state ON tasks
    FOR EACH ROW WHEN (NEW.state = 'queued' AND OLD.state IS DISTINCT FROM 'queued')
    EXECUTE FUNCTION tasks_queued_at();
