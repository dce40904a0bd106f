-- 25/30: order summaries view
CREATE VIEW order_summaries AS
    SELECT o.id, o.customer_id, o.status, o.total_cents, count(i.product_id) AS lines
    FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
    GROUP BY o.id;
