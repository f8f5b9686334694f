//! A deliberately dumb HTTP/1.1 client for request lines no well-behaved client sends
//! (dot segments, absolute-form, CONNECT): writes the bytes given, reads one response.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response: status and body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request_line` with the given key and `Connection: close`, returns the response.
pub async fn send(addr: SocketAddr, request_line: &str, key: &str) -> RawResponse {
    let request = format!(
        "{request_line}\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    send_bytes(addr, request.as_bytes()).await
}

/// Sends raw bytes, returns the response read until the server closes.
pub async fn send_bytes(addr: SocketAddr, bytes: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write request");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}
