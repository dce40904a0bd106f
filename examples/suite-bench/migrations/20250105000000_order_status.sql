-- 05/30: order status
CREATE TYPE order_status AS ENUM ('placed', 'paid', 'shipped', 'cancelled');
