-- Passwords, web console sessions and enrollment tokens.

-- One password per user. Failed sign-ins are counted here, so that every broker node
-- sees the same count, and a lockout outlives a restart.
CREATE TABLE credentials (
    user_id          TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id),
    -- argon2id in PHC string format.
    password_hash    TEXT NOT NULL,
    failed_attempts  INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until_us  BIGINT,
    updated_at_us    BIGINT NOT NULL
);

-- The cookie carries the id with a signature; a row ended or expired no longer signs
-- anyone in.
CREATE TABLE web_sessions (
    id             TEXT COLLATE "C" PRIMARY KEY,
    user_id        TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at_us  BIGINT NOT NULL,
    expires_at_us  BIGINT NOT NULL,
    ended_at_us    BIGINT
);

CREATE INDEX web_sessions_by_user ON web_sessions (user_id);

-- One-time links with which users set their own password. Only the SHA-256 of the
-- token is stored, so a copy of the database does not hold usable links.
CREATE TABLE enrollments (
    token_hash     TEXT COLLATE "C" PRIMARY KEY,
    user_id        TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at_us  BIGINT NOT NULL,
    expires_at_us  BIGINT NOT NULL,
    used_at_us     BIGINT
);
