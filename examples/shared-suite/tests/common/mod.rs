//! The suite's 50 tests, written once for the harness of `suite.rs` (drydock's shared
//! environment). The suite benchmark, with its baselines, is `examples/suite-bench`
//! (`scripts/bench-suite`).

#![allow(dead_code)] // each harness uses part of this

use shared_suite::Orders;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Places `n` orders as `owner` and checks that this test sees exactly those.
pub async fn exercise(orders: &mut Orders, owner: &str, n: usize) -> TestResult {
    assert_eq!(orders.count().await?, 0, "a fresh slice has no orders");
    assert_eq!(orders.cached_count().await?, 0, "a fresh slice has no keys");
    for i in 0..n {
        orders.place(owner, &format!("item-{i}")).await?;
        // Interleave with the other tests running at the same time.
        tokio::task::yield_now().await;
    }
    assert_eq!(orders.count().await?, n as i64, "only this test's rows");
    assert_eq!(
        orders.cached_count().await?,
        n as i64,
        "only this test's count"
    );
    assert_eq!(orders.owners().await?, [owner], "only this test's keys");
    Ok(())
}

/// The 50 tests: `$test!(name, orders)` for each, from the harness's own test macro.
#[macro_export]
macro_rules! fifty {
    ($test:ident) => {
        $test!(order_01, 1);
        $test!(order_02, 2);
        $test!(order_03, 3);
        $test!(order_04, 4);
        $test!(order_05, 5);
        $test!(order_06, 1);
        $test!(order_07, 2);
        $test!(order_08, 3);
        $test!(order_09, 4);
        $test!(order_10, 5);
        $test!(order_11, 1);
        $test!(order_12, 2);
        $test!(order_13, 3);
        $test!(order_14, 4);
        $test!(order_15, 5);
        $test!(order_16, 1);
        $test!(order_17, 2);
        $test!(order_18, 3);
        $test!(order_19, 4);
        $test!(order_20, 5);
        $test!(order_21, 1);
        $test!(order_22, 2);
        $test!(order_23, 3);
        $test!(order_24, 4);
        $test!(order_25, 5);
        $test!(order_26, 1);
        $test!(order_27, 2);
        $test!(order_28, 3);
        $test!(order_29, 4);
        $test!(order_30, 5);
        $test!(order_31, 1);
        $test!(order_32, 2);
        $test!(order_33, 3);
        $test!(order_34, 4);
        $test!(order_35, 5);
        $test!(order_36, 1);
        $test!(order_37, 2);
        $test!(order_38, 3);
        $test!(order_39, 4);
        $test!(order_40, 5);
        $test!(order_41, 1);
        $test!(order_42, 2);
        $test!(order_43, 3);
        $test!(order_44, 4);
        $test!(order_45, 5);
        $test!(order_46, 1);
        $test!(order_47, 2);
        $test!(order_48, 3);
        $test!(order_49, 4);
        $test!(order_50, 5);
    };
}
