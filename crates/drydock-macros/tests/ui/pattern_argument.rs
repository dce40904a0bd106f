#[drydock::test]
async fn pattern_argument((a, b): (u8, u8)) {
    let _ = (a, b);
}

fn main() {}
