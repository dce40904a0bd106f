-- 19/30: audit log index
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);
