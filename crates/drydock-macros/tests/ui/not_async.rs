#[drydock::test]
fn not_async() {}

fn main() {}
