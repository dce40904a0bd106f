#[drydock::test]
async fn not_injectable(port: u16) {
    let _ = port;
}

fn main() {}
