//! The direct client against a raw TCP listener on loopback that asserts the exact bytes it
//! receives and answers with scripted bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{DirectBody, DirectClient, HeaderSource};
use crate::error::GatewayError;
use crate::proxy::client::{Upstream, UpstreamConfig, UpstreamFailure};
use crate::proxy::raw_headers::RawHeaders;

mod tls;

impl DirectClient {
    /// The tests' way in: a whole `http::Request`, its own headers sent as they are.
    pub(in crate::proxy::direct) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(http::Response<DirectBody>, RawHeaders), UpstreamFailure> {
        let (parts, body) = request.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let headers = HeaderSource::Map(&parts.headers);
        self.exchange(&parts.method, target, &headers, body).await
    }
}

/// A listener on loopback that counts the connections it accepted.
struct Listener {
    listener: Arc<TcpListener>,
    authority: Authority,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    /// Binds a free port on loopback.
    async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        Self {
            listener: Arc::new(listener),
            authority,
            accepted: Arc::default(),
        }
    }

    /// Serves each accepted connection with `serve` on its own task.
    fn spawn<F, Fut>(&self, serve: F)
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (listener, accepted) = (self.listener.clone(), self.accepted.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream));
            }
        });
    }

    /// A plain-HTTP direct client to this listener.
    fn client(&self) -> DirectClient {
        DirectClient::new(&Scheme::HTTP, &self.authority, Duration::from_secs(2))
    }

    /// How many connections were accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A request with a whole body to `/v1/customers?limit=3`.
fn request(method: Method, body: &'static str) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
    *request.method_mut() = method;
    *request.uri_mut() = "http://upstream/v1/customers?limit=3".parse().unwrap();
    request
}

/// Reads one request: the head, then as many body bytes as its `content-length` says.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8(bytes.clone()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .map_or(0, |v| v.parse().unwrap());
    let mut body = body.len();
    while body < length {
        let n = stream.read(&mut buf).await.unwrap();
        bytes.extend_from_slice(&buf[..n]);
        body += n;
    }
    Some(String::from_utf8(bytes).unwrap())
}

/// Answers every request on the connection with `answer`.
async fn answer_each<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: &'static str) {
    while read_request(&mut stream).await.is_some() {
        stream.write_all(answer.as_bytes()).await.unwrap();
    }
}

/// Closes with a TCP reset rather than a FIN.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}

/// The whole response body, or the error it ended with.
async fn body_of(response: http::Response<super::DirectBody>) -> std::io::Result<Bytes> {
    Ok(response.into_body().collect().await?.to_bytes())
}

/// A complete answer with a `Content-Length` body.
const OK_HELLO: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_1\r\ncontent-length: 7\r\n\r\n{\"a\":1}";

#[tokio::test]
async fn head_and_body_arrive_in_one_write_with_the_body_length() {
    let listener = Listener::bind().await;
    let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
    listener.spawn(move |mut stream| {
        let seen = seen.clone();
        async move {
            stream.readable().await.unwrap();
            let mut buf = vec![0u8; 65536];
            let n = stream.try_read(&mut buf).unwrap();
            seen.send(String::from_utf8(buf[..n].to_vec()).unwrap())
                .unwrap();
            stream.write_all(OK_HELLO.as_bytes()).await.unwrap();
        }
    });
    let mut sent = request(Method::POST, "email=a%40b.c");
    let headers = sent.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert("content-length", HeaderValue::from_static("99"));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer sk_test_x"),
    );
    let (response, headers) = listener.client().send(sent).await.unwrap();
    let expected = format!(
        "POST /v1/customers?limit=3 HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\nauthorization: Bearer sk_test_x\r\ncontent-length: 13\r\n\r\nemail=a%40b.c",
        listener.authority
    );
    assert_eq!(
        received.recv().await.unwrap(),
        expected,
        "everything in the first read"
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_11);
    assert!(
        response.headers().is_empty(),
        "Stripe's headers come back as lines"
    );
    let request_id = http::HeaderName::from_static("request-id");
    assert_eq!(headers.get(&request_id), Some(b"req_1".as_slice()));
    assert_eq!(headers.content_length(), Some(7));
    assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(7));
    assert_eq!(body_of(response).await.unwrap(), "{\"a\":1}");
}

#[tokio::test]
async fn a_chunked_answer_split_across_writes_is_decoded_and_its_connection_reused() {
    let listener = Listener::bind().await;
    listener.spawn(|mut stream| async move {
        while read_request(&mut stream).await.is_some() {
            let parts = [
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r",
                "\nhello\r\n6;ext=1\r\n wor",
                "ld\r\n0\r\nx-trailer: 1\r\n",
                "\r\n",
            ];
            for part in parts {
                stream.write_all(part.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let client = listener.client();
    for _ in 0..2 {
        let response = client.send(request(Method::GET, "")).await.unwrap().0;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_of(response).await.unwrap(), "hello world");
    }
    assert_eq!(listener.accepted(), 1);
}

#[tokio::test]
async fn a_close_delimited_answer_is_read_until_the_server_closes() {
    let listener = Listener::bind().await;
    listener.spawn(|mut stream| async move {
        read_request(&mut stream).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"part two").await.unwrap();
    });
    let client = listener.client();
    let response = client.send(request(Method::GET, "")).await.unwrap().0;
    assert_eq!(body_of(response).await.unwrap(), "part one, part two");
    let response = client.send(request(Method::GET, "")).await.unwrap().0;
    assert_eq!(body_of(response).await.unwrap(), "part one, part two");
    assert_eq!(
        listener.accepted(),
        2,
        "a close-delimited connection is never reused"
    );
}

#[tokio::test]
async fn a_connection_is_reused_for_the_next_request() {
    let listener = Listener::bind().await;
    listener.spawn(|stream| answer_each(stream, OK_HELLO));
    let client = listener.client();
    for _ in 0..3 {
        let response = client.send(request(Method::POST, "a=1")).await.unwrap().0;
        assert_eq!(body_of(response).await.unwrap(), "{\"a\":1}");
    }
    assert_eq!(listener.accepted(), 1);
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_not_used() {
    let listener = Listener::bind().await;
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    listener.spawn(move |mut stream| {
        let counted = counted.clone();
        async move {
            read_request(&mut stream).await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            stream.write_all(OK_HELLO.as_bytes()).await.unwrap();
        }
    });
    let client = listener.client();
    let response = client.send(request(Method::POST, "a=1")).await.unwrap().0;
    body_of(response).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = client.send(request(Method::POST, "a=2")).await.unwrap().0;
    assert_eq!(body_of(response).await.unwrap(), "{\"a\":1}");
    assert_eq!(
        listener.accepted(),
        2,
        "a fresh connection for the second request"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "each request delivered once"
    );
}

#[tokio::test]
async fn head_and_no_content_answers_have_no_body_and_keep_the_connection() {
    let listener = Listener::bind().await;
    listener.spawn(|mut stream| async move {
        read_request(&mut stream).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n")
            .await
            .unwrap();
        answer_each(stream, "HTTP/1.1 204 No Content\r\n\r\n").await;
    });
    let client = listener.client();
    let (response, headers) = client.send(request(Method::HEAD, "")).await.unwrap();
    assert_eq!(headers.content_length(), Some(50));
    assert!(http_body::Body::is_end_stream(response.body()));
    assert_eq!(body_of(response).await.unwrap(), "");
    let response = client.send(request(Method::DELETE, "")).await.unwrap().0;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(body_of(response).await.unwrap(), "");
    assert_eq!(listener.accepted(), 1);
}

#[tokio::test]
async fn a_reset_before_the_head_is_reset() {
    let listener = Listener::bind().await;
    listener.spawn(|mut stream| async move {
        read_request(&mut stream).await.unwrap();
        reset(stream);
    });
    let failure = listener
        .client()
        .send(request(Method::POST, "a=1"))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, "reset");
    assert!(matches!(failure.error, GatewayError::UpstreamUnreachable));
    assert_eq!(listener.accepted(), 1, "never re-sent");
}

#[tokio::test]
async fn garbage_instead_of_a_head_is_reset() {
    let listener = Listener::bind().await;
    listener.spawn(|stream| answer_each(stream, "SSH-2.0-OpenSSH\r\n\r\n"));
    let failure = listener
        .client()
        .send(request(Method::GET, ""))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, "reset");
}

#[tokio::test]
async fn a_refused_connection_is_connect() {
    // Bound but never listening: connects are refused and no other test can take the port.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let authority: Authority = refusing.local_addr().unwrap().to_string().parse().unwrap();
    let client = DirectClient::new(&Scheme::HTTP, &authority, Duration::from_secs(2));
    let failure = client.send(request(Method::GET, "")).await.unwrap_err();
    assert_eq!(failure.kind, "connect");
    assert!(matches!(failure.error, GatewayError::UpstreamUnreachable));
}

#[tokio::test]
async fn a_body_cut_midway_fails_the_stream() {
    let answers = [
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"id\":",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{\"id\":\r\n",
    ];
    for answer in answers {
        let listener = Listener::bind().await;
        listener.spawn(move |mut stream| async move {
            read_request(&mut stream).await.unwrap();
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        let (response, _) = listener
            .client()
            .send(request(Method::GET, ""))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let error = body_of(response).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{answer}");
    }
}

/// An `Upstream` with a short deadline against `listener`.
fn upstream(listener: &Listener) -> Upstream {
    Upstream::new(UpstreamConfig {
        base: format!("http://{}", listener.authority).parse().unwrap(),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_millis(300),
        max_body_bytes: 1 << 20,
    })
}

/// A request as `Upstream::send` takes it, with a whole body.
fn whole_request(body: &'static str) -> Request<super::super::client::UpstreamBody> {
    request(Method::POST, body).map(Either::Right)
}

#[tokio::test]
async fn a_head_that_never_comes_is_a_timeout() {
    let listener = Listener::bind().await;
    listener.spawn(|mut stream| async move {
        read_request(&mut stream).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let Err(failure) = upstream(&listener).send(whole_request("a=1")).await else {
        panic!("an answer came");
    };
    assert_eq!(failure.kind, "timeout");
    assert!(matches!(
        failure.error,
        GatewayError::UpstreamTimeout { .. }
    ));
}

#[tokio::test]
async fn a_body_still_coming_at_the_deadline_fails_the_stream() {
    let listener = Listener::bind().await;
    listener.spawn(|mut stream| async move {
        read_request(&mut stream).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"a")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let (response, _) = upstream(&listener)
        .send(whole_request("a=1"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(response.into_body().collect().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}
