-- A checkpoint's sidecar `<name>.config.json` (the engine's settings the weights cannot show), stored with the model
-- so that a worker fetching the model gets it too; NULL for a model without one.
ALTER TABLE models ADD COLUMN config text CHECK (config IS NULL OR octet_length(config) <= 65536);
