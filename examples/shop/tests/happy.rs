//! Happy paths: orders placed, paid and read back through the HTTP API.

mod common;

use common::{environment, error, order, TestResult, TestShop};
use drydock::{stub::BodyPattern, Slice};
use serde_json::json;

#[drydock::test(env = environment)]
async fn an_order_is_paid_and_answered_with_201(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let (status, body) = shop.place(&order("c-1", &[("rope-10m", 1)])).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "paid");
    assert_eq!(body["total_cents"], 8900);
    let key = body["idempotency_key"].as_str().expect("a key");
    assert_eq!(body["charge_id"], format!("ch_{key}"));
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_placed_order_reads_back_with_its_lines(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let (_, placed) = shop
        .place(&order("c-2", &[("rope-10m", 1), ("carabiner", 4)]))
        .await?;
    let id = placed["id"].as_i64().expect("an id");
    let (status, read) = shop.get(&format!("/orders/{id}")).await?;
    assert_eq!(status, 200);
    assert_eq!(read, placed);
    assert_eq!(
        read["items"],
        json!([
            {"sku": "carabiner", "quantity": 4, "unit_price_cents": 1250},
            {"sku": "rope-10m", "quantity": 1, "unit_price_cents": 8900},
        ])
    );
    assert_eq!(read["total_cents"], 8900 + 4 * 1250);
    Ok(())
}

#[drydock::test(env = environment)]
async fn an_unknown_order_is_404(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    let (status, body) = shop.get("/orders/999999").await?;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no order 999999");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_customers_orders_are_listed_oldest_first(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let mut ids = Vec::new();
    for sku in ["chalk", "helmet", "carabiner"] {
        let (_, body) = shop.place(&order("c-3", &[(sku, 1)])).await?;
        ids.push(body["id"].as_i64().expect("an id"));
    }
    shop.place(&order("someone-else", &[("chalk", 1)])).await?;
    let (status, list) = shop.get("/customers/c-3/orders").await?;
    assert_eq!(status, 200);
    let listed: Vec<i64> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|o| o["id"].as_i64())
        .collect();
    assert_eq!(listed, ids);
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_new_product_can_be_added_and_ordered(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let put = shop
        .http
        .put(format!("{}/products/quickdraw", shop.url))
        .json(&json!({"sku": "ignored", "name": "Quickdraw", "price_cents": 1599, "stock": 12}))
        .send()
        .await?;
    assert_eq!(put.status().as_u16(), 204);
    let (status, product) = shop.get("/products/quickdraw").await?;
    assert_eq!(status, 200);
    assert_eq!(
        product,
        json!({"sku": "quickdraw", "name": "Quickdraw", "price_cents": 1599, "stock": 12})
    );
    let (status, body) = shop.place(&order("c-4", &[("quickdraw", 3)])).await?;
    assert_eq!((status, &body["total_cents"]), (201, &json!(3 * 1599)));
    assert_eq!(shop.stock_in_db("quickdraw").await?, 9);
    Ok(())
}

#[drydock::test(env = environment)]
async fn stock_is_read_from_the_database_then_from_the_cache(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    let (_, first) = shop.get("/products/helmet/stock").await?;
    assert_eq!(
        first,
        json!({"sku": "helmet", "stock": 20, "source": "database"})
    );
    let (_, second) = shop.get("/products/helmet/stock").await?;
    assert_eq!(
        second,
        json!({"sku": "helmet", "stock": 20, "source": "cache"})
    );
    assert_eq!(shop.stock_in_cache("helmet").await?, Some(20));
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_declined_card_is_402_and_gives_the_stock_back(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.payment
        .mount(common::charges().respond(error(402, "card_declined", "Your card was declined.")))
        .await?;
    let (status, body) = shop.place(&order("c-5", &[("helmet", 2)])).await?;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["order_status"], "declined");
    assert_eq!(body["error"], "payment declined: card_declined");
    let id = body["order_id"].as_i64().expect("an id");
    assert_eq!(shop.status_of(id).await?, "declined");
    assert_eq!(
        shop.stock_in_db("helmet").await?,
        20,
        "the reservation was released"
    );
    assert_eq!(shop.stock_in_cache("helmet").await?, Some(20));
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_201_with_status_declined_is_a_decline(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.payment
        .mount(
            common::charges().respond(drydock::stub::Response::status(201).json(json!({
                "id": "ch_declined", "status": "declined", "amount_cents": 1999, "currency": "EUR"
            }))),
        )
        .await?;
    let (status, body) = shop.place(&order("c-6", &[("chalk", 1)])).await?;
    assert_eq!((status, &body["order_status"]), (402, &json!("declined")));
    assert_eq!(shop.stock_in_db("chalk").await?, 50);
    Ok(())
}

#[drydock::test(env = environment)]
async fn out_of_stock_is_409_and_the_provider_is_not_called(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.payment
        .mount(
            common::charges()
                .respond(common::succeeded())
                .expect(drydock::stub::Times::NEVER),
        )
        .await?;
    let (status, body) = shop.place(&order("c-7", &[("helmet", 21)])).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        "not enough stock of \"helmet\": 20 left, 21 wanted"
    );
    assert_eq!(shop.stock_in_db("helmet").await?, 20);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&shop.pool)
        .await?;
    assert_eq!(orders, 0, "nothing stored");
    shop.payment.verify().await?;
    Ok(())
}

#[drydock::test(env = environment)]
async fn invalid_orders_are_422_with_the_reason(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    let cases = [
        (
            order("c-8", &[("no-such-thing", 1)]),
            "unknown product \"no-such-thing\"",
        ),
        (
            order("c-8", &[]),
            "invalid order: an order needs at least one item",
        ),
        (
            order("c-8", &[("chalk", 0)]),
            "invalid order: quantity of \"chalk\" must be positive",
        ),
        (
            order("", &[("chalk", 1)]),
            "invalid order: customer_id is empty",
        ),
        (
            json!({"customer_id": "c-8", "currency": "euro", "items": [{"sku": "chalk", "quantity": 1}]}),
            "invalid order: currency \"euro\" is not an ISO 4217 code",
        ),
        (
            order("c-8", &[("chalk", 1), ("chalk", 2)]),
            "invalid order: a product appears on two lines",
        ),
    ];
    for (body, reason) in cases {
        let (status, answer) = shop.place(&body).await?;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some(reason)),
            "{body}"
        );
    }
    assert!(
        shop.charges().await?.is_empty(),
        "no charge for an invalid order"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn the_last_unit_is_sold_once_to_concurrent_customers(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let orders: Vec<_> = (0..6)
        .map(|i| order(&format!("racer-{i}"), &[("last-one", 1)]))
        .collect();
    let answers = futures::future::join_all(orders.iter().map(|o| shop.place(o))).await;
    let mut statuses: Vec<u16> = answers
        .into_iter()
        .map(|a| a.map(|(s, _)| s))
        .collect::<Result<_, _>>()?;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
    assert_eq!(shop.stock_in_db("last-one").await?, 0);
    assert_eq!(shop.charges().await?.len(), 1);
    Ok(())
}

#[drydock::test(env = environment)]
async fn health_reports_each_dependency(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    let (status, body) = shop.get("/health").await?;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"database": "up", "payment_breaker": "closed"}));
    Ok(())
}

#[drydock::test(env = environment)]
async fn the_charge_carries_the_orders_total_and_customer(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.payment
        .mount(
            common::charges()
                .body(BodyPattern::json(json!({
                    "amount_cents": 2 * 5495 + 1999,
                    "currency": "EUR",
                    "customer_id": "c-9",
                    "order_id": "1",
                })))
                .respond(common::succeeded())
                .expect(1),
        )
        .await?;
    let (status, body) = shop
        .place(&order("c-9", &[("helmet", 2), ("chalk", 1)]))
        .await?;
    assert_eq!(status, 201, "{body}");
    shop.payment.verify().await?;
    Ok(())
}
