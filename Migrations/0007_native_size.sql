-- A task may leave its size to the model (no width/height: the worker renders at the model's
-- native size). Its pixel count for routing is then 0: any worker's limit admits it.
ALTER TABLE tasks DROP COLUMN pixels;
ALTER TABLE tasks ADD COLUMN pixels integer GENERATED ALWAYS AS
    (coalesce((parameters->>'width')::integer * (parameters->>'height')::integer, 0)) STORED;
