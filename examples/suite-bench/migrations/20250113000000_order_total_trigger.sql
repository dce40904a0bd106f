-- 13/30: order total trigger
CREATE FUNCTION order_items_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders SET total_cents = (
        SELECT coalesce(sum(quantity * unit_price_cents), 0) FROM order_items WHERE order_id = NEW.order_id
    ) WHERE id = NEW.order_id;
    RETURN NEW;
END $$;
CREATE TRIGGER order_items_total AFTER INSERT OR UPDATE ON order_items
    FOR EACH ROW EXECUTE FUNCTION order_items_total();
