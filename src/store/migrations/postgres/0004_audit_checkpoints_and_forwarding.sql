-- Signed checkpoints of the audit chain's head, and how far each audit repository
-- has received the log (the log itself is the forwarder's spool).

-- Append-only like audit_log: a checkpoint that could be deleted would not show that
-- the log's tail was cut.
CREATE TABLE audit_checkpoints (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq              BIGINT NOT NULL,
    hash             TEXT NOT NULL,
    at_us            BIGINT NOT NULL,
    signature        TEXT NOT NULL,
    key_fingerprint  TEXT NOT NULL
);

CREATE INDEX audit_checkpoints_by_seq ON audit_checkpoints (seq, id);

CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only';
END;
$$;

CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();

-- Every record up to seq has been written to the destination (at least once).
CREATE TABLE audit_forwarding (
    destination    TEXT COLLATE "C" PRIMARY KEY,
    seq            BIGINT NOT NULL,
    updated_at_us  BIGINT NOT NULL
);
