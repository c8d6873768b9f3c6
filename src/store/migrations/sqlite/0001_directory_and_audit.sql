-- The directory and the audit log.

CREATE TABLE institutions (
    id        TEXT PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('consulting', 'inviting', 'platform')),
    name_zh   TEXT NOT NULL,
    name_en   TEXT NOT NULL,
    region    TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    institution_id   TEXT NOT NULL REFERENCES institutions (id),
    role             TEXT NOT NULL CHECK (role IN ('clinic_staff', 'doctor', 'interpreter', 'admin')),
    display_name_zh  TEXT NOT NULL,
    display_name_en  TEXT NOT NULL,
    active           INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
) STRICT;

CREATE INDEX users_by_institution ON users (institution_id, role);

CREATE TABLE specialists (
    user_id       TEXT PRIMARY KEY REFERENCES users (id),
    title         TEXT NOT NULL,
    on_call       INTEGER NOT NULL CHECK (on_call IN (0, 1)),
    slot_minutes  INTEGER NOT NULL CHECK (slot_minutes BETWEEN 5 AND 240)
) STRICT;

CREATE TABLE specialist_specialties (
    user_id    TEXT NOT NULL REFERENCES specialists (user_id) ON DELETE CASCADE,
    specialty  TEXT NOT NULL,
    PRIMARY KEY (user_id, specialty)
) STRICT;

CREATE INDEX specialist_specialties_by_specialty ON specialist_specialties (specialty, user_id);

CREATE TABLE specialist_languages (
    user_id   TEXT NOT NULL REFERENCES specialists (user_id) ON DELETE CASCADE,
    language  TEXT NOT NULL CHECK (language IN ('mandarin', 'tibetan', 'english')),
    PRIMARY KEY (user_id, language)
) STRICT;

-- Append-only: the application never updates or deletes a record, and the triggers
-- below refuse it to anyone else who uses the database through SQLite.
CREATE TABLE audit_log (
    seq                 INTEGER PRIMARY KEY,
    at_us               INTEGER NOT NULL,
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
) STRICT;

CREATE INDEX audit_log_by_time ON audit_log (at_us);
CREATE INDEX audit_log_by_target_institution ON audit_log (target_institution, seq);
CREATE INDEX audit_log_by_actor_institution ON audit_log (actor_institution, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
