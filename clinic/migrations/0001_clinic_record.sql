-- The clinic's record: patients (one list for every treadmill) and what each treadmill
-- replicates from its local history.db. Rows a treadmill ships are keyed by
-- (treadmill_id, local_id): an upsert of the same row twice leaves one row.

-- A clinic-wide change counter: every insert or update of a patient or a session takes
-- the next value, so a treadmill pulls "everything changed after N" and misses nothing.
CREATE SEQUENCE record_changes;

CREATE TABLE patients (
    patient_id       text PRIMARY KEY,
    display_name     text NOT NULL,
    notes            text NOT NULL,
    mode             text NOT NULL,
    speed_cap_kmh    double precision NOT NULL,
    base_stop_mm     double precision NOT NULL,
    warn_margin_mm   double precision NOT NULL,
    target_min       double precision NOT NULL,
    sessions_per_day integer NOT NULL,
    created_wall     double precision NOT NULL,
    updated_wall     double precision NOT NULL,
    -- Each accepted change adds one; an edit based on an older version is refused.
    version          bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_by       text NOT NULL,          -- "treadmill <id>": whose change was last accepted
    changed          bigint NOT NULL DEFAULT nextval('record_changes')
);
CREATE INDEX patients_changed ON patients (changed);

CREATE TABLE sessions (
    treadmill_id     text NOT NULL,
    local_id         bigint NOT NULL,
    patient_id       text NOT NULL,
    status           text NOT NULL,
    started_wall     double precision NOT NULL,
    ended_wall       double precision,
    planned_min      double precision NOT NULL,
    mode             text NOT NULL,
    duration_s       double precision NOT NULL,
    distance_m       double precision NOT NULL,
    max_kmh          double precision NOT NULL,
    warnings         integer NOT NULL,
    trips            integer NOT NULL,
    closest_mm       double precision,
    pain_before      integer NOT NULL,
    pain_after       integer,
    end_reason       text,
    start_speed_kmh  double precision,
    changed          bigint NOT NULL DEFAULT nextval('record_changes'),
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (treadmill_id, local_id)
);
CREATE INDEX sessions_patient ON sessions (patient_id, started_wall);
CREATE INDEX sessions_changed ON sessions (changed);

CREATE TABLE samples (
    treadmill_id     text NOT NULL,
    session_local_id bigint NOT NULL,
    seq              integer NOT NULL,
    t_s              double precision NOT NULL,
    gap_mm           double precision,
    belt_kmh         double precision NOT NULL,
    state            smallint NOT NULL,
    warning          smallint NOT NULL,
    stop_mm          double precision,
    warn_mm          double precision,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (treadmill_id, session_local_id, seq)
);

CREATE TABLE events (
    treadmill_id     text NOT NULL,
    local_id         bigint NOT NULL,
    wall_time        double precision NOT NULL,
    t_mono           double precision NOT NULL,
    kind             text NOT NULL,
    code             text NOT NULL,
    message          text NOT NULL,
    actor            text NOT NULL,
    figures          jsonb NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (treadmill_id, local_id)
);
CREATE INDEX events_wall ON events (treadmill_id, wall_time);

-- The dashboard's audit trail, row for row (its hash chain verifies here as on the treadmill).
CREATE TABLE audit (
    treadmill_id     text NOT NULL,
    local_id         bigint NOT NULL,
    time             text NOT NULL,
    actor            text,
    role             text,
    address          text NOT NULL,
    action           text NOT NULL,
    target           text NOT NULL,
    outcome          integer NOT NULL,
    detail           text NOT NULL,
    prev_hash        text NOT NULL,
    hash             text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (treadmill_id, local_id)
);
