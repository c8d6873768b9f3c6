-- Availability, consultations, slot claims and opinion reports.

CREATE TABLE availability (
    doctor_id      TEXT PRIMARY KEY REFERENCES users (id),
    -- "weekday:start_minute:end_minute" joined by ';', in Asia/Shanghai local time.
    weekly         TEXT NOT NULL,
    auto_accept    INTEGER NOT NULL CHECK (auto_accept IN (0, 1)),
    updated_at_us  INTEGER NOT NULL
) STRICT;

CREATE TABLE availability_exceptions (
    doctor_id  TEXT NOT NULL REFERENCES availability (doctor_id) ON DELETE CASCADE,
    start_us   INTEGER NOT NULL,
    end_us     INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    CHECK (start_us < end_us)
) STRICT;

CREATE INDEX availability_exceptions_by_doctor ON availability_exceptions (doctor_id, start_us);

CREATE TABLE consultations (
    id                         TEXT PRIMARY KEY,
    version                    INTEGER NOT NULL CHECK (version >= 1),
    state                      TEXT NOT NULL CHECK (state IN ('requested', 'scheduled',
                                   'in_session', 'awaiting_report', 'completed', 'declined',
                                   'cancelled', 'no_show', 'escalated')),
    urgency                    TEXT NOT NULL CHECK (urgency IN ('routine', 'urgent')),
    inviting_institution_id    TEXT NOT NULL REFERENCES institutions (id),
    requested_by               TEXT NOT NULL REFERENCES users (id),
    patient_ref                TEXT NOT NULL,
    specialty                  TEXT NOT NULL,
    reason                     TEXT NOT NULL,
    case_summary               TEXT NOT NULL,
    doctor_id                  TEXT REFERENCES users (id),
    consulting_institution_id  TEXT REFERENCES institutions (id),
    start_us                   INTEGER,
    end_us                     INTEGER,
    consent_consenter          TEXT,
    consent_method             TEXT,
    consent_recorded_by        TEXT REFERENCES users (id),
    consent_recorded_at_us     INTEGER,
    consent_witness            TEXT,
    state_reason               TEXT NOT NULL,
    created_at_us              INTEGER NOT NULL,
    accepted_at_us             INTEGER,
    escalated_at_us            INTEGER,
    CHECK ((start_us IS NULL) = (end_us IS NULL) AND (start_us IS NULL OR start_us < end_us))
) STRICT;

CREATE INDEX consultations_by_inviting ON consultations (inviting_institution_id, start_us);
CREATE INDEX consultations_by_consulting ON consultations (consulting_institution_id, start_us);
CREATE INDEX consultations_by_doctor ON consultations (doctor_id, start_us);
CREATE INDEX consultations_pending ON consultations (state, urgency, created_at_us);

CREATE TABLE consultation_invitees (
    consultation_id  TEXT NOT NULL REFERENCES consultations (id),
    user_id          TEXT NOT NULL REFERENCES users (id),
    kind             TEXT NOT NULL CHECK (kind IN ('interpreter', 'doctor')),
    position         INTEGER NOT NULL,
    PRIMARY KEY (consultation_id, user_id)
) STRICT;

CREATE INDEX consultation_invitees_by_user ON consultation_invitees (user_id);

-- No double booking, whatever the application does: a doctor's time is claimed in
-- 5-minute quanta and the primary key lets each quantum be claimed once. A booking
-- claims every quantum of its slot in the same transaction that creates it.
CREATE TABLE slot_claims (
    doctor_id         TEXT NOT NULL REFERENCES users (id),
    quantum_start_us  INTEGER NOT NULL,
    consultation_id   TEXT NOT NULL REFERENCES consultations (id),
    PRIMARY KEY (doctor_id, quantum_start_us)
) STRICT;

CREATE INDEX slot_claims_by_consultation ON slot_claims (consultation_id);

CREATE TABLE opinion_reports (
    consultation_id       TEXT NOT NULL REFERENCES consultations (id),
    version               INTEGER NOT NULL CHECK (version >= 1),
    diagnosis_impression  TEXT NOT NULL,
    recommendations       TEXT NOT NULL,
    follow_up             TEXT NOT NULL,
    author_id             TEXT NOT NULL REFERENCES users (id),
    supersedes_version    INTEGER,
    created_at_us         INTEGER NOT NULL,
    signed_at_us          INTEGER,
    content_hash          TEXT,
    -- The audit record that carries the signed content's hash.
    audit_seq             INTEGER,
    PRIMARY KEY (consultation_id, version)
) STRICT;

-- A signed opinion is immutable.
CREATE TRIGGER opinion_reports_signed_no_update BEFORE UPDATE ON opinion_reports
WHEN OLD.signed_at_us IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a signed opinion report is immutable');
END;

CREATE TRIGGER opinion_reports_signed_no_delete BEFORE DELETE ON opinion_reports
WHEN OLD.signed_at_us IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a signed opinion report is immutable');
END;
