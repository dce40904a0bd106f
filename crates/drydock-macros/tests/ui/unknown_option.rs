#[drydock::test(services = "postgres")]
async fn unknown_option() {}

fn main() {}
