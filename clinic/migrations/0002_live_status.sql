-- One small row per treadmill, upserted by its replicator about once a second and at
-- once on a change of state: what the clinic overview shows. updated_at is the
-- server's clock, so the overview's "not live" never depends on a Pi's clock.
CREATE TABLE live_status (
    treadmill_id        text PRIMARY KEY,
    dashboard_url       text NOT NULL DEFAULT '',
    state               text NOT NULL,
    warning             boolean NOT NULL DEFAULT false,
    reasons             jsonb NOT NULL DEFAULT '[]',
    belt_kmh            double precision NOT NULL DEFAULT 0,
    patient_id          text,
    session_id          bigint,
    session_phase       text,
    session_elapsed_s   double precision,
    session_planned_s   double precision,
    trip_count          integer NOT NULL DEFAULT 0,
    last_trip_wall      double precision,
    last_trip_reasons   jsonb NOT NULL DEFAULT '[]',
    controller_link     boolean NOT NULL DEFAULT true,
    outbox_backlog      integer NOT NULL DEFAULT 0,
    outbox_oldest_wall  double precision,
    replicated_wall     double precision,
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Listeners (the overview) hear of every change at once.
CREATE FUNCTION live_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('live_status', NEW.treadmill_id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER live_status_changed AFTER INSERT OR UPDATE ON live_status
    FOR EACH ROW EXECUTE FUNCTION live_status_notify();
