-- The directory and the audit log.
--
-- Identifiers and codes use the "C" collation: they sort and compare byte by byte, as
-- in SQLite and in Rust, whatever the database's default collation, so that listings,
-- page tokens (`user_id > $after`) and aggregated lists come out in the same order.

CREATE TABLE institutions (
    id        TEXT COLLATE "C" PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('consulting', 'inviting', 'platform')),
    name_zh   TEXT NOT NULL,
    name_en   TEXT NOT NULL,
    region    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE users (
    id               TEXT COLLATE "C" PRIMARY KEY,
    institution_id   TEXT COLLATE "C" NOT NULL REFERENCES institutions (id),
    role             TEXT NOT NULL CHECK (role IN ('clinic_staff', 'doctor', 'interpreter', 'admin')),
    display_name_zh  TEXT NOT NULL,
    display_name_en  TEXT NOT NULL,
    active           BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE INDEX users_by_institution ON users (institution_id, role);

CREATE TABLE specialists (
    user_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id),
    title         TEXT NOT NULL,
    on_call       BOOLEAN NOT NULL,
    slot_minutes  INTEGER NOT NULL CHECK (slot_minutes BETWEEN 5 AND 240)
);

CREATE TABLE specialist_specialties (
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES specialists (user_id) ON DELETE CASCADE,
    specialty  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, specialty)
);

CREATE INDEX specialist_specialties_by_specialty ON specialist_specialties (specialty, user_id);

CREATE TABLE specialist_languages (
    user_id   TEXT COLLATE "C" NOT NULL REFERENCES specialists (user_id) ON DELETE CASCADE,
    language  TEXT COLLATE "C" NOT NULL CHECK (language IN ('mandarin', 'tibetan', 'english')),
    PRIMARY KEY (user_id, language)
);

CREATE TABLE audit_log (
    seq                 BIGINT PRIMARY KEY,
    at_us               BIGINT NOT NULL,
    actor_user          TEXT NOT NULL,
    actor_institution   TEXT NOT NULL,
    actor_role          TEXT NOT NULL,
    actor_fingerprint   TEXT NOT NULL,
    action              TEXT NOT NULL,
    target              TEXT NOT NULL,
    target_institution  TEXT,
    outcome             TEXT NOT NULL,
    details             TEXT NOT NULL,
    prev_hash           TEXT NOT NULL,
    hash                TEXT NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (at_us);
CREATE INDEX audit_log_by_target_institution ON audit_log (target_institution, seq);
CREATE INDEX audit_log_by_actor_institution ON audit_log (actor_institution, seq);

-- One row: the chain's head. Appenders lock it (SELECT … FOR UPDATE), which orders
-- appends from every broker node sharing this database.
CREATE TABLE audit_head (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL
);
INSERT INTO audit_head (singleton, seq, hash)
VALUES (TRUE, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: refuse UPDATE, DELETE and TRUNCATE of the log to every role.
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
