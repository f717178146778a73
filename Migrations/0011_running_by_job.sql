-- A job's running tasks, found without reading its queued ones: a cancel marks its job and cancels
-- its running tasks in one short transaction, and with a million queued tasks freshly inserted (no
-- statistics yet) PostgreSQL walked the job's (job_id, index) key over all of them (0.3 s) instead.
CREATE INDEX tasks_running_job ON tasks (job_id) WHERE state = 'running';
