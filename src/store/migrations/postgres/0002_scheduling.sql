-- Availability, consultations, slot claims and opinion reports.
--
-- The same tables and columns as in SQLite; instants are microseconds since the Unix
-- epoch, identifiers and codes use the "C" collation (see 0001).

CREATE TABLE availability (
    doctor_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id),
    -- "weekday:start_minute:end_minute" joined by ';', in Asia/Shanghai local time.
    weekly         TEXT NOT NULL,
    auto_accept    BOOLEAN NOT NULL,
    updated_at_us  BIGINT NOT NULL
);

CREATE TABLE availability_exceptions (
    doctor_id  TEXT COLLATE "C" NOT NULL REFERENCES availability (doctor_id) ON DELETE CASCADE,
    start_us   BIGINT NOT NULL,
    end_us     BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    CHECK (start_us < end_us)
);

CREATE INDEX availability_exceptions_by_doctor ON availability_exceptions (doctor_id, start_us);

CREATE TABLE consultations (
    id                         TEXT COLLATE "C" PRIMARY KEY,
    version                    BIGINT NOT NULL CHECK (version >= 1),
    state                      TEXT COLLATE "C" NOT NULL CHECK (state IN ('requested',
                                   'scheduled', 'in_session', 'awaiting_report', 'completed',
                                   'declined', 'cancelled', 'no_show', 'escalated')),
    urgency                    TEXT COLLATE "C" NOT NULL CHECK (urgency IN ('routine', 'urgent')),
    inviting_institution_id    TEXT COLLATE "C" NOT NULL REFERENCES institutions (id),
    requested_by               TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    patient_ref                TEXT COLLATE "C" NOT NULL,
    specialty                  TEXT COLLATE "C" NOT NULL,
    reason                     TEXT NOT NULL,
    case_summary               TEXT NOT NULL,
    doctor_id                  TEXT COLLATE "C" REFERENCES users (id),
    consulting_institution_id  TEXT COLLATE "C" REFERENCES institutions (id),
    start_us                   BIGINT,
    end_us                     BIGINT,
    consent_consenter          TEXT COLLATE "C",
    consent_method             TEXT COLLATE "C",
    consent_recorded_by        TEXT COLLATE "C" REFERENCES users (id),
    consent_recorded_at_us     BIGINT,
    consent_witness            TEXT,
    state_reason               TEXT NOT NULL,
    created_at_us              BIGINT NOT NULL,
    accepted_at_us             BIGINT,
    escalated_at_us            BIGINT,
    CHECK ((start_us IS NULL) = (end_us IS NULL) AND (start_us IS NULL OR start_us < end_us))
);

CREATE INDEX consultations_by_inviting ON consultations (inviting_institution_id, start_us);
CREATE INDEX consultations_by_consulting ON consultations (consulting_institution_id, start_us);
CREATE INDEX consultations_by_doctor ON consultations (doctor_id, start_us);
CREATE INDEX consultations_pending ON consultations (state, urgency, created_at_us);

CREATE TABLE consultation_invitees (
    consultation_id  TEXT COLLATE "C" NOT NULL REFERENCES consultations (id),
    user_id          TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    kind             TEXT COLLATE "C" NOT NULL CHECK (kind IN ('interpreter', 'doctor')),
    position         INTEGER NOT NULL,
    PRIMARY KEY (consultation_id, user_id)
);

CREATE INDEX consultation_invitees_by_user ON consultation_invitees (user_id);

-- No double booking, whatever the application does: a doctor's time is claimed in
-- 5-minute quanta and the primary key lets each quantum be claimed once. A booking
-- claims every quantum of its slot in the same transaction that creates it; of two
-- transactions claiming the same quantum, the second waits for the first and fails
-- with a unique violation if the first commits.
CREATE TABLE slot_claims (
    doctor_id         TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    quantum_start_us  BIGINT NOT NULL,
    consultation_id   TEXT COLLATE "C" NOT NULL REFERENCES consultations (id),
    PRIMARY KEY (doctor_id, quantum_start_us)
);

CREATE INDEX slot_claims_by_consultation ON slot_claims (consultation_id);

CREATE TABLE opinion_reports (
    consultation_id       TEXT COLLATE "C" NOT NULL REFERENCES consultations (id),
    version               BIGINT NOT NULL CHECK (version >= 1),
    diagnosis_impression  TEXT NOT NULL,
    recommendations       TEXT NOT NULL,
    follow_up             TEXT NOT NULL,
    author_id             TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    supersedes_version    BIGINT,
    created_at_us         BIGINT NOT NULL,
    signed_at_us          BIGINT,
    content_hash          TEXT COLLATE "C",
    -- The audit record that carries the signed content's hash.
    audit_seq             BIGINT,
    PRIMARY KEY (consultation_id, version)
);

-- A signed opinion is immutable, to every role that can reach the database.
CREATE FUNCTION opinion_reports_signed_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a signed opinion report is immutable';
END;
$$;

CREATE TRIGGER opinion_reports_signed_no_change BEFORE UPDATE OR DELETE ON opinion_reports
    FOR EACH ROW WHEN (OLD.signed_at_us IS NOT NULL)
    EXECUTE FUNCTION opinion_reports_signed_immutable();
