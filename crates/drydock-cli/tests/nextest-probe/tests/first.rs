#[test]
fn first_a() {
    nextest_probe::probe("first_a");
}

#[test]
fn first_b() {
    nextest_probe::probe("first_b");
}
