-- Signed checkpoints of the audit chain's head, and how far each audit repository
-- has received the log (the log itself is the forwarder's spool).

-- Append-only like audit_log: a checkpoint that could be deleted would not show that
-- the log's tail was cut.
CREATE TABLE audit_checkpoints (
    id               INTEGER PRIMARY KEY,
    seq              INTEGER NOT NULL,
    hash             TEXT NOT NULL,
    at_us            INTEGER NOT NULL,
    signature        TEXT NOT NULL,
    key_fingerprint  TEXT NOT NULL
) STRICT;

CREATE INDEX audit_checkpoints_by_seq ON audit_checkpoints (seq, id);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

-- Every record up to seq has been written to the destination (at least once).
CREATE TABLE audit_forwarding (
    destination    TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL,
    updated_at_us  INTEGER NOT NULL
) STRICT;
