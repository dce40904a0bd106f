//! The HTTP API: orders in, orders and stock out.
//!
//! | route | what |
//! |---|---|
//! | `POST /orders` | place and pay an order: `201` paid, `402` declined, `409` out of stock, `422` invalid, `502` the provider answered nonsense, `503` a dependency is unavailable |
//! | `GET /orders/{id}` | an order with its lines |
//! | `GET /customers/{id}/orders` | a customer's orders |
//! | `GET /products/{sku}` | a product, from PostgreSQL |
//! | `PUT /products/{sku}` | add or replace a product |
//! | `GET /products/{sku}/stock` | its stock, from the cache when it can (`source` says which) |
//! | `GET /health` | each dependency's state |
//!
//! Every error is a JSON body `{"error": …}` with the order's id and status when there is an
//! order, so a client can tell "not charged" from "charge outcome unknown".

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::{
    orders::{NewOrder, OrderError, Orders, Product},
    payment::{ChargeRequest, PaymentClient, PaymentError},
    stock::StockCache,
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL.
    pub orders: Orders,
    /// Redis.
    pub stock: StockCache,
    /// The payment provider.
    pub payments: Arc<PaymentClient>,
    /// Wakes the outbox publisher.
    pub outbox: Arc<Notify>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(order))
        .route("/customers/{id}/orders", get(customer_orders))
        .route("/products/{sku}", get(product).put(put_product))
        .route("/products/{sku}/stock", get(stock))
        .route("/health", get(health))
        .with_state(state)
}

/// An error answer.
#[derive(Debug, Serialize)]
struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_status: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl std::fmt::Display) -> Self {
        ApiError {
            status,
            error: error.to_string(),
            order_id: None,
            order_status: None,
        }
    }

    fn order(mut self, id: i64, status: &'static str) -> Self {
        self.order_id = Some(id);
        self.order_status = Some(status);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        let status = match &e {
            OrderError::Invalid(_) | OrderError::UnknownProduct(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            OrderError::OutOfStock { .. } => StatusCode::CONFLICT,
            OrderError::Database(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the order database is unavailable; try again",
                );
            }
        };
        ApiError::new(status, e)
    }
}

async fn place_order(
    State(state): State<AppState>,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<crate::orders::Order>), ApiError> {
    let placed = state.orders.place(&new).await?;
    state.outbox.notify_one();
    refresh_cache(&state.stock, placed.stock).await;
    let order = placed.order;
    let charge = ChargeRequest {
        amount_cents: order.total_cents,
        currency: order.currency.clone(),
        customer_id: order.customer_id.clone(),
        order_id: order.id.to_string(),
    };
    let outcome = state.payments.charge(&charge, &order.idempotency_key).await;
    let failure = match outcome {
        Ok(charge) => {
            state.orders.mark_paid(order.id, &charge.id).await?;
            state.outbox.notify_one();
            let paid = state.orders.order(order.id).await?;
            return paid
                .map(|paid| (StatusCode::CREATED, Json(paid)))
                .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "order vanished"));
        }
        Err(e) => e,
    };
    tracing::warn!(order = order.id, error = %failure, "order not paid");
    if failure.outcome_unknown() {
        // The provider may have taken the money: the order stays pending, with its stock, until
        // the provider's result arrives on the payment-results topic.
        return Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, &failure).order(order.id, "pending")
        );
    }
    let (status, order_status) = match &failure {
        PaymentError::Declined(_) => (StatusCode::PAYMENT_REQUIRED, "declined"),
        PaymentError::CircuitOpen
        | PaymentError::RateLimited { .. }
        | PaymentError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "failed"),
        _ => (StatusCode::BAD_GATEWAY, "failed"),
    };
    let released = state
        .orders
        .mark_unpaid(order.id, order_status, &failure.to_string())
        .await?;
    state.outbox.notify_one();
    refresh_cache(&state.stock, released).await;
    Err(ApiError::new(status, &failure).order(order.id, order_status))
}

async fn refresh_cache(stock: &StockCache, levels: Vec<(String, i64)>) {
    for (sku, level) in levels {
        stock.set(&sku, level).await;
    }
}

async fn order(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<crate::orders::Order>, ApiError> {
    state
        .orders
        .order(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no order {id}")))
}

async fn customer_orders(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::orders::Order>>, ApiError> {
    Ok(Json(state.orders.customer_orders(&id).await?))
}

async fn product(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Json<Product>, ApiError> {
    state
        .orders
        .product(&sku)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no product {sku:?}")))
}

async fn put_product(
    State(state): State<AppState>,
    Path(sku): Path<String>,
    Json(mut product): Json<Product>,
) -> Result<StatusCode, ApiError> {
    product.sku = sku;
    state.orders.upsert_product(&product).await?;
    state
        .stock
        .set(&product.sku, i64::from(product.stock))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn stock(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(level) = state.stock.get(&sku).await {
        return Ok(Json(json!({"sku": sku, "stock": level, "source": "cache"})));
    }
    let product = state
        .orders
        .product(&sku)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no product {sku:?}")))?;
    let level = i64::from(product.stock);
    state.stock.set(&sku, level).await;
    Ok(Json(
        json!({"sku": sku, "stock": level, "source": "database"}),
    ))
}

async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let database = sqlx::query("SELECT 1")
        .execute(state.orders.pool())
        .await
        .is_ok();
    Json(json!({
        "database": if database { "up" } else { "down" },
        "payment_breaker": format!("{:?}", state.payments.breaker_state()).to_lowercase(),
    }))
}
