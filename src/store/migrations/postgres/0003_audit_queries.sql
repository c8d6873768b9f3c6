-- Audit queries by target (a consultation's timeline), by actor and by action.
CREATE INDEX audit_log_by_target ON audit_log (target, seq);
CREATE INDEX audit_log_by_actor ON audit_log (actor_user, seq);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
