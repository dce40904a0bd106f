//! What the stub server's tests share: a real HTTP client.

#![allow(dead_code)]

/// A reqwest client that talks to loopback directly, whatever proxy the environment sets.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a default reqwest client builds")
}

/// The error and every cause, one line: what a user would read.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
