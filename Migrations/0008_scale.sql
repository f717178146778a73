-- Claims and counters that cost the same whatever the history and whoever asks; jobs that finish are done.
--
-- A job's counters were kept by a row trigger: cancelling N queued tasks updated the job's row
-- N times in one transaction (quadratic: 80k tasks took 111 s, a million did not finish). Now one
-- statement trigger adds each statement's deltas, grouped by job, once. (PostgreSQL allows no
-- column list with transition tables, so it fires for every UPDATE of tasks; statements that
-- change no state add nothing and touch no job.)
DROP TRIGGER tasks_counts_update ON tasks;
DROP FUNCTION tasks_count_changed();

CREATE FUNCTION tasks_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- An active job whose last queued or running task finishes is done.
    UPDATE jobs j SET
        queued_count = queued_count + d.queued, running_count = running_count + d.running,
        done_count = done_count + d.done, failed_count = failed_count + d.failed,
        cancelled_count = cancelled_count + d.cancelled,
        state = CASE WHEN j.state = 'active' AND j.queued_count + d.queued + j.running_count + d.running = 0
                     THEN 'done' ELSE j.state END,
        finished_at = CASE WHEN j.state = 'active' AND j.queued_count + d.queued + j.running_count + d.running = 0
                           THEN now() ELSE j.finished_at END
    FROM (SELECT job_id,
                 coalesce(sum(s) FILTER (WHERE state = 'queued'), 0) AS queued, coalesce(sum(s) FILTER (WHERE state = 'running'), 0) AS running,
                 coalesce(sum(s) FILTER (WHERE state = 'done'), 0) AS done, coalesce(sum(s) FILTER (WHERE state = 'failed'), 0) AS failed,
                 coalesce(sum(s) FILTER (WHERE state = 'cancelled'), 0) AS cancelled
          FROM (SELECT job_id, state, 1 AS s FROM changed_new UNION ALL SELECT job_id, state, -1 FROM changed_old) c
          GROUP BY job_id) d
    WHERE j.id = d.job_id
      AND (d.queued <> 0 OR d.running <> 0 OR d.done <> 0 OR d.failed <> 0 OR d.cancelled <> 0);
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_counts_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_changed();

-- A worker whose models match nothing in a job finds that out from this index at once instead of
-- filtering the job's whole queue; the claim's models are a parameter PostgreSQL plans with, so it
-- takes this index when they are rare in the job and the (job, index) queue index when they are common.
CREATE INDEX tasks_queued_model ON tasks (job_id, model, index) WHERE state = 'queued';
-- Active jobs, found without reading the finished ones.
CREATE INDEX jobs_active ON jobs (priority DESC, created_at, id) WHERE state = 'active';
