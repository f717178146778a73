-- A token belongs to an owner; a job submitted with a token belongs to the token's owner, and a
-- submit token sees only its owner's jobs, images and events (admins see everything). Tokens made
-- before owners existed belong to an owner named as the token was.
ALTER TABLE api_tokens ADD COLUMN owner text NOT NULL DEFAULT '';
UPDATE api_tokens SET owner = name;
CREATE INDEX jobs_owner ON jobs (owner, id);
