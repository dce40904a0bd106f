//! Realistic data: customers, products and orders generated with `fake` from a fixed seed
//! (the same data every run), many orders, and totals that must agree everywhere — the API,
//! PostgreSQL, the charges the provider saw, the events on Kafka, the stock left.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{charges, environment, error, eventually, order, TestResult, TestShop, EVENT_WAIT};
use drydock::{stub::BodyPattern, Slice};
use fake::{
    faker::{company::en::CatchPhrase, internet::en::SafeEmail, name::en::Name},
    Fake,
};
use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use serde_json::{json, Value};

struct Customer {
    id: String,
    name: String,
}

/// `n` customers, ids from their e-mail addresses (distinct).
fn customers(rng: &mut StdRng, n: usize) -> Vec<Customer> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while out.len() < n {
        let email: String = SafeEmail().fake_with_rng(rng);
        if seen.insert(email.clone()) {
            out.push(Customer {
                id: email,
                name: Name().fake_with_rng(rng),
            });
        }
    }
    out
}

/// Adds `n` generated products with `stock` each through the API; sku → price.
async fn products(
    shop: &TestShop,
    rng: &mut StdRng,
    n: usize,
    stock: i32,
) -> Result<BTreeMap<String, i64>, Box<dyn std::error::Error + Send + Sync>> {
    let mut prices = BTreeMap::new();
    for i in 0..n {
        let sku = format!("gen-{i:02}");
        let price: i64 = rng.random_range(199..25_000);
        let name: String = CatchPhrase().fake_with_rng(rng);
        let answer = shop
            .http
            .put(format!("{}/products/{sku}", shop.url))
            .json(&json!({"sku": sku, "name": name, "price_cents": price, "stock": stock}))
            .send()
            .await?;
        assert_eq!(answer.status().as_u16(), 204);
        prices.insert(sku, price);
    }
    Ok(prices)
}

/// A generated order: 1–4 distinct products, 1–3 of each; with its expected total.
fn random_order(
    rng: &mut StdRng,
    customer: &str,
    prices: &BTreeMap<String, i64>,
) -> (Value, Vec<(String, i32)>, i64) {
    let skus: Vec<&String> = prices.keys().collect();
    let count = rng.random_range(1..=4);
    let chosen: Vec<&&String> = skus.choose_multiple(rng, count).collect();
    let lines: Vec<(String, i32)> = chosen
        .into_iter()
        .map(|sku| ((*sku).clone(), rng.random_range(1..=3)))
        .collect();
    let total = lines
        .iter()
        .map(|(sku, q)| prices[sku] * i64::from(*q))
        .sum();
    let borrowed: Vec<(&str, i32)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    (order(customer, &borrowed), lines, total)
}

/// The charges' amounts by order id, as the provider received them.
async fn charged(
    shop: &TestShop,
) -> Result<HashMap<String, i64>, Box<dyn std::error::Error + Send + Sync>> {
    let mut amounts = HashMap::new();
    for request in shop.charges().await? {
        let body: Value = serde_json::from_str(&request.body)?;
        amounts.insert(
            body["order_id"].as_str().unwrap_or_default().to_owned(),
            body["amount_cents"].as_i64().unwrap_or_default(),
        );
    }
    Ok(amounts)
}

#[drydock::test(env = environment)]
async fn generated_orders_have_consistent_totals_everywhere(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let mut rng = StdRng::seed_from_u64(16);
    let people = customers(&mut rng, 12);
    let prices = products(&shop, &mut rng, 8, 500).await?;
    let mut expected: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    let mut sold: HashMap<String, i32> = HashMap::new();
    for _ in 0..40 {
        let customer = people.choose(&mut rng).expect("customers");
        let (body, lines, total) = random_order(&mut rng, &customer.id, &prices);
        let (status, answer) = shop.place(&body).await?;
        assert_eq!(status, 201, "{} ({}): {answer}", customer.name, customer.id);
        assert_eq!(answer["total_cents"], total);
        let entry = expected.entry(customer.id.clone()).or_default();
        entry.0 += 1;
        entry.1 += total;
        for (sku, q) in lines {
            *sold.entry(sku).or_default() += q;
        }
    }
    // The API, per customer.
    for (customer, (count, total)) in &expected {
        let (_, list) = shop.get(&format!("/customers/{customer}/orders")).await?;
        let list = list.as_array().expect("a list");
        assert_eq!(list.len(), *count, "{customer}");
        let sum: i64 = list.iter().filter_map(|o| o["total_cents"].as_i64()).sum();
        assert_eq!(sum, *total, "{customer}");
        assert!(list.iter().all(|o| o["status"] == "paid"));
    }
    // PostgreSQL: each order's total is the sum of its lines.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders o WHERE total_cents <>
           (SELECT sum(quantity * unit_price_cents) FROM order_items i WHERE i.order_id = o.id)",
    )
    .fetch_one(&shop.pool)
    .await?;
    assert_eq!(mismatched, 0);
    // The provider: one charge per order, for its total.
    let amounts = charged(&shop).await?;
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, total_cents FROM orders")
        .fetch_all(&shop.pool)
        .await?;
    assert_eq!(amounts.len(), rows.len());
    for (id, total) in rows {
        assert_eq!(amounts.get(&id.to_string()), Some(&total), "order {id}");
    }
    // Stock: what is left is what was there minus what was sold.
    for (sku, q) in sold {
        assert_eq!(shop.stock_in_db(&sku).await?, 500 - q, "{sku}");
        assert_eq!(
            shop.stock_in_cache(&sku).await?,
            Some(i64::from(500 - q)),
            "{sku}"
        );
    }
    Ok(())
}

#[drydock::test(env = environment)]
async fn many_concurrent_orders_never_oversell(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let mut rng = StdRng::seed_from_u64(7);
    let people = customers(&mut rng, 30);
    let put = shop
        .http
        .put(format!("{}/products/scarce", shop.url))
        .json(&json!({"sku": "scarce", "name": "Limited edition", "price_cents": 12_500, "stock": 30}))
        .send()
        .await?;
    assert_eq!(put.status().as_u16(), 204);
    let wanted: Vec<(String, i32)> = people
        .iter()
        .map(|c| (c.id.clone(), rng.random_range(1..=3)))
        .collect();
    let bodies: Vec<Value> = wanted
        .iter()
        .map(|(c, q)| order(c, &[("scarce", *q)]))
        .collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| shop.place(b))).await;
    let mut sold = 0;
    let mut paid = 0;
    for ((_, quantity), answer) in wanted.iter().zip(answers) {
        let (status, body) = answer?;
        match status {
            201 => {
                sold += quantity;
                paid += 1;
            }
            409 => assert!(body["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("not enough stock")),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(sold <= 30 && sold > 30 - 3, "sold {sold} of 30");
    assert_eq!(shop.stock_in_db("scarce").await?, 30 - sold);
    assert_eq!(shop.charges().await?.len(), paid);
    Ok(())
}

#[drydock::test(env = environment)]
async fn declined_customers_are_not_charged_and_their_stock_returns(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    let mut rng = StdRng::seed_from_u64(99);
    let people = customers(&mut rng, 10);
    let blocked: Vec<&Customer> = people.iter().take(3).collect();
    for customer in &blocked {
        shop.payment
            .mount(
                charges()
                    .body(BodyPattern::json_partial(
                        json!({"customer_id": customer.id}),
                    ))
                    .priority(1)
                    .respond(error(402, "card_declined", "Declined.")),
            )
            .await?;
    }
    shop.provider_accepts().await?;
    let prices = products(&shop, &mut rng, 5, 1000).await?;
    let (mut paid_total, mut declined) = (0, 0);
    let mut sold: HashMap<String, i32> = HashMap::new();
    for i in 0..30 {
        let customer = &people[i % people.len()];
        let (body, lines, total) = random_order(&mut rng, &customer.id, &prices);
        let (status, answer) = shop.place(&body).await?;
        if blocked.iter().any(|b| b.id == customer.id) {
            assert_eq!(status, 402, "{answer}");
            declined += 1;
        } else {
            assert_eq!(status, 201, "{answer}");
            paid_total += total;
            for (sku, q) in lines {
                *sold.entry(sku).or_default() += q;
            }
        }
    }
    assert_eq!(declined, 9);
    let (in_db,): (Option<i64>,) =
        sqlx::query_as("SELECT sum(total_cents)::bigint FROM orders WHERE status = 'paid'")
            .fetch_one(&shop.pool)
            .await?;
    assert_eq!(in_db, Some(paid_total));
    let declined_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'declined'")
            .fetch_one(&shop.pool)
            .await?;
    assert_eq!(declined_rows, 9);
    for sku in prices.keys() {
        let left = shop.stock_in_db(sku).await?;
        assert_eq!(
            left,
            1000 - sold.get(sku).copied().unwrap_or(0),
            "{sku}: declined orders gave theirs back"
        );
    }
    Ok(())
}

#[drydock::test(env = environment)]
async fn every_generated_order_is_on_kafka_with_its_lines(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let mut rng = StdRng::seed_from_u64(2024);
    let people = customers(&mut rng, 5);
    let prices = products(&shop, &mut rng, 6, 300).await?;
    let events = shop.order_events("ledger")?;
    let mut totals = BTreeMap::new();
    for i in 0..15 {
        let (body, _, total) = random_order(&mut rng, &people[i % 5].id, &prices);
        let (status, answer) = shop.place(&body).await?;
        assert_eq!(status, 201, "{answer}");
        totals.insert(answer["id"].as_i64().expect("an id"), total);
    }
    let received = shop.kafka.consume(&events, 30, EVENT_WAIT).await?;
    let mut placed = BTreeMap::new();
    let mut paid = BTreeMap::new();
    for message in &received {
        let event: Value = message.json()?;
        let id = event["order_id"].as_i64().expect("an order id");
        match event["type"].as_str() {
            Some("order.placed") => {
                let lines: i64 = event["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|l| {
                        l["quantity"].as_i64().unwrap_or(0)
                            * l["unit_price_cents"].as_i64().unwrap_or(0)
                    })
                    .sum();
                assert_eq!(event["total_cents"], lines, "{event}");
                placed.insert(id, lines);
            }
            Some("order.paid") => {
                paid.insert(id, event["amount_cents"].as_i64().unwrap_or(0));
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(placed, totals);
    assert_eq!(paid, totals);
    Ok(())
}

#[drydock::test(env = environment)]
async fn refunds_of_generated_orders_restore_stock_exactly(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let mut rng = StdRng::seed_from_u64(5);
    let people = customers(&mut rng, 6);
    let prices = products(&shop, &mut rng, 4, 200).await?;
    let mut placed = Vec::new();
    for i in 0..12 {
        let (body, lines, _) = random_order(&mut rng, &people[i % 6].id, &prices);
        let (status, answer) = shop.place(&body).await?;
        assert_eq!(status, 201);
        placed.push((answer["id"].as_i64().expect("an id"), lines));
    }
    let mut kept: HashMap<String, i32> = HashMap::new();
    let mut refunded = Vec::new();
    for (i, (id, lines)) in placed.iter().enumerate() {
        if i % 3 == 0 {
            shop.publish_result(&format!("refund-{id}"), *id, "refunded")
                .await?;
            refunded.push(*id);
        } else {
            for (sku, q) in lines {
                *kept.entry(sku.clone()).or_default() += q;
            }
        }
    }
    eventually(EVENT_WAIT, "every refund applied", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'refunded'")
            .fetch_one(&shop.pool)
            .await
            .ok()?;
        (n == refunded.len() as i64).then_some(())
    })
    .await?;
    for sku in prices.keys() {
        assert_eq!(
            shop.stock_in_db(sku).await?,
            200 - kept.get(sku).copied().unwrap_or(0),
            "{sku}"
        );
    }
    Ok(())
}
