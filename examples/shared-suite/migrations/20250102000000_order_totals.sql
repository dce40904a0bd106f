CREATE VIEW order_totals AS
    SELECT owner, count(*) AS orders FROM orders GROUP BY owner;
