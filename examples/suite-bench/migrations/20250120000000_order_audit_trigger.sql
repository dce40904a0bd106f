-- 20/30: order audit trigger
CREATE FUNCTION orders_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (entity, entity_id, action, details)
        VALUES ('order', NEW.id, TG_OP, jsonb_build_object('status', NEW.status));
    RETURN NEW;
END $$;
CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_audit();
