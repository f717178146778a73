-- Owners share the farm: per-owner quotas (queued tasks at submission, running tasks at claim) and a
-- fair-share weight. An owner without a row has no quota and weight 1. `farm quotas set` writes it.
CREATE TABLE owner_quotas (
    owner       text PRIMARY KEY,
    max_queued  integer CHECK (max_queued >= 0),
    max_running integer CHECK (max_running >= 0),
    weight      double precision NOT NULL DEFAULT 1 CHECK (weight > 0 AND weight <= 1000000)
);
