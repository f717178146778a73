-- What `farm workers` shows live: the machine each worker runs on, the model it holds in
-- memory, and the speed of each running task (steps per second, as the worker measures it).

ALTER TABLE workers ADD COLUMN device text NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN loaded_model text NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN steps_per_second real;
