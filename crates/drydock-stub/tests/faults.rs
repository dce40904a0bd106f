//! Each connection-level fault, observed from reqwest (and, for the reset, from a raw socket,
//! to tell a reset from a close).

mod common;

use std::io::{Read, Write};

use drydock_stub::{Fault, Response, Stub, StubServer};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

async fn faulty(
    fault: Fault,
    body: &str,
) -> std::result::Result<StubServer, drydock_stub::StubError> {
    let server = StubServer::start().await?;
    server
        .mount(Stub::get("/fault").respond(Response::ok().body(body).header("x-a", "b")))
        .await?;
    let mut stub = Stub::get("/fault")
        .priority(1)
        .respond(Response::ok().body(body));
    stub.response.fault = Some(fault);
    server.mount(stub).await?;
    server
        .mount(Stub::get("/fine").respond(Response::ok().body("fine")))
        .await?;
    Ok(server)
}

async fn send_error(server: &StubServer) -> String {
    match common::client()
        .get(format!("{}/fault", server.url()))
        .send()
        .await
    {
        Ok(answer) => panic!("expected the request to fail, got {}", answer.status()),
        Err(e) => common::chain(&e),
    }
}

#[tokio::test]
async fn connection_reset_by_peer() -> Result {
    let server = faulty(Fault::ConnectionResetByPeer, "x").await?;
    let error = send_error(&server).await;
    assert!(error.contains("reset"), "{error}");

    // A raw read tells a reset (RST) from an orderly close (FIN).
    let address = server.address().expect("in process");
    let raw = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(address)?;
        socket.write_all(b"GET /fault HTTP/1.1\r\nhost: x\r\n\r\n")?;
        let mut buf = [0u8; 64];
        socket.read(&mut buf).map(|_| ())
    })
    .await?;
    let kind = raw.expect_err("the read must fail").kind();
    assert_eq!(kind, std::io::ErrorKind::ConnectionReset);
    // The server still serves.
    assert_eq!(
        common::client()
            .get(format!("{}/fine", server.url()))
            .send()
            .await?
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn empty_response() -> Result {
    let server = faulty(Fault::EmptyResponse, "x").await?;
    let error = send_error(&server).await;
    assert!(error.contains("closed before message completed"), "{error}");
    Ok(())
}

#[tokio::test]
async fn malformed_response_chunk() -> Result {
    let server = faulty(Fault::MalformedResponseChunk, "x").await?;
    let answer = common::client()
        .get(format!("{}/fault", server.url()))
        .send()
        .await?;
    assert_eq!(answer.status(), 200, "the head is fine");
    let error = answer
        .bytes()
        .await
        .expect_err("the body cannot be decoded");
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    assert!(
        common::chain(&error).contains("chunk"),
        "{}",
        common::chain(&error)
    );
    Ok(())
}

#[tokio::test]
async fn random_data_then_close() -> Result {
    let server = faulty(Fault::RandomDataThenClose, "x").await?;
    let error = send_error(&server).await;
    assert!(
        error.contains("invalid HTTP") || error.contains("parse"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn close_after_n_bytes_in_the_head_and_in_the_body() -> Result {
    let body = "b".repeat(1000);
    let server = faulty(Fault::CloseAfterBytes(10), &body).await?;
    let error = send_error(&server).await;
    assert!(error.contains("closed before message completed"), "{error}");

    let server = faulty(Fault::CloseAfterBytes(300), &body).await?;
    let answer = common::client()
        .get(format!("{}/fault", server.url()))
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-length"], "1000");
    let error = answer.bytes().await.expect_err("the body is cut short");
    let chain = common::chain(&error);
    assert!(
        chain.contains("end of file before message length reached"),
        "{chain}"
    );
    Ok(())
}
