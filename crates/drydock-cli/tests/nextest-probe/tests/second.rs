#[test]
fn second_a() {
    nextest_probe::probe("second_a");
}
