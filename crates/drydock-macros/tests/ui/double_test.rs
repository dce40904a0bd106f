#[drydock::test]
#[test]
async fn double_test() {}

fn main() {}
