-- A worker name is bound to the CURVE key that first used it: another key cannot take it over.
ALTER TABLE workers ADD COLUMN public_key text;
