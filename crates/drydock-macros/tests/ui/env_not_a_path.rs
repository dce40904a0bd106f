#[drydock::test(env = "my_env")]
async fn env_not_a_path() {}

fn main() {}
