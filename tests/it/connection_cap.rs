//! The connection cap (RELIABILITY F4): past `--max-connections` new connections wait in
//! the listen queues, so a flood of connections cannot use up the file descriptors the
//! served ones need for Stripe, the database and the request log. One cap covers every
//! listener.

use std::num::NonZeroUsize;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::support::app::{TestApp, TestOptions};
use crate::support::backend::Backend;
use crate::support::cli::binary;
use crate::support::eventually;
use crate::support::served::{Provisioned, ServedProcess};

/// The file limit the server runs under; its default cap is a quarter of it.
const FILE_LIMIT: usize = 128;
const CAP: usize = FILE_LIMIT / 4;
/// Clients, each on its own connection: enough that serving them all at once, with an
/// upstream connection each, would need more descriptors than the limit allows.
const CLIENTS: usize = 60;
const SOON: Duration = Duration::from_secs(30);
const MAIN_PATH: &str = "/v1/connections/stripe/customers";

/// Sends one keep-alive GET of `path` on a new connection, reports its status, and keeps
/// the connection open until `release` turns true.
async fn client(
    addr: std::net::SocketAddr,
    path: &'static str,
    key: String,
    answered: mpsc::UnboundedSender<u16>,
    mut release: watch::Receiver<bool>,
) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0; 1024];
        let read = stream.read(&mut buf).await.expect("read");
        assert!(read > 0, "the connection closed before an answer");
        head.extend_from_slice(&buf[..read]);
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    answered.send(status).expect("the test listens");
    let _ = release.wait_for(|released| *released).await;
}

/// The next status a client reports; fails the test if none arrives soon.
async fn served(answered: &mut mpsc::UnboundedReceiver<u16>, what: &str) -> u16 {
    tokio::time::timeout(SOON, answered.recv())
        .await
        .unwrap_or_else(|_| panic!("{what} is served"))
        .expect("a client reports")
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's descriptors")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_in_the_queue_and_descriptors_stay_under_the_limit() {
    let Provisioned {
        double,
        db,
        master,
        key,
    } = Provisioned::new("flood").await;
    let mut command = std::process::Command::new("prlimit");
    command
        .arg(format!("--nofile={FILE_LIMIT}:{FILE_LIMIT}"))
        .arg(binary().get_program())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("AGENTGATE_DATABASE", &db.url)
        .env("AGENTGATE_MASTER_KEY", &master)
        .env("AGENTGATE_STRIPE_API_BASE", double.base_url())
        .env("AGENTGATE_LOG", "info")
        .env("AGENTGATE_CONNECTION_RATE_TEST", "0")
        .env_remove("AGENTGATE_MASTER_KEY_FILE");
    let server = ServedProcess::spawn(command);

    let (answered_tx, mut answered) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client(
                server.addr,
                MAIN_PATH,
                key.clone(),
                answered_tx.clone(),
                released.clone(),
            ))
        })
        .collect();
    let mut statuses = Vec::new();
    while statuses.len() < CAP {
        statuses.push(served(&mut answered, "each of the first connections").await);
    }
    // Every admitted connection is held open, so no other may be served: a further answer
    // within this window means the cap let one more in.
    let further = tokio::time::timeout(Duration::from_millis(500), answered.recv()).await;
    assert!(
        further.is_err(),
        "a connection past the cap of {CAP} was served"
    );
    let held = open_descriptors(server.pid());
    assert!(
        held < FILE_LIMIT,
        "{held} descriptors open against a limit of {FILE_LIMIT}"
    );

    release.send(true).unwrap();
    while statuses.len() < CLIENTS {
        statuses.push(served(&mut answered, "each queued connection, once slots are free").await);
    }
    for client in clients {
        client.await.unwrap();
    }
    assert!(
        statuses.iter().all(|status| *status == 200),
        "every client got 200: {statuses:?}"
    );
    assert_eq!(double.received().len(), CLIENTS);

    let metrics_url = format!("http://{}/metrics", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let metrics = eventually(SOON, "the closed connections to be counted", || {
        let request = http.get(&metrics_url).send();
        async move {
            let text = request.await.ok()?.text().await.ok()?;
            // The one open connection is the one reading the metrics.
            text.contains("agentgate_client_connections 1\n")
                .then_some(text)
        }
    })
    .await;
    let waits = metrics
        .lines()
        .find_map(|line| line.strip_prefix("agentgate_connection_limit_waits_total "))
        .and_then(|value| value.parse::<u64>().ok())
        .expect("the waits are counted");
    assert!(waits >= 1, "{metrics}");

    server.terminate();
    let (status, logs) = server.wait();
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains(&format!("\"max_connections\":{CAP}")),
        "{logs}"
    );
    assert!(logs.contains("connection limit reached"), "{logs}");
    assert!(!logs.contains("accept failed"), "{logs}");
}

/// One cap for every listener, and every slot goes to whichever listener has a connection
/// waiting: an idle SDK listener holds none of them, so the main listener's connections
/// fill the cap; past it, a connection to either waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_is_shared_by_the_listeners_and_an_idle_one_holds_no_slot() {
    let options = TestOptions {
        sdk_listener: true,
        max_connections: NonZeroUsize::new(4),
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await;
    let (answered_tx, mut answered) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let start = |addr, path| {
        tokio::spawn(client(
            addr,
            path,
            app.key.clone(),
            answered_tx.clone(),
            released.clone(),
        ))
    };
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(start(app.addr, MAIN_PATH));
        assert_eq!(
            served(&mut answered, "each of four main connections").await,
            200
        );
    }
    clients.push(start(app.sdk_addr.unwrap(), "/v1/customers"));
    let further = tokio::time::timeout(Duration::from_millis(500), answered.recv()).await;
    assert!(
        further.is_err(),
        "an SDK connection was served past the cap of 4"
    );
    release.send(true).unwrap();
    assert_eq!(
        served(&mut answered, "the SDK connection, once slots are free").await,
        200
    );
    for client in clients {
        client.await.unwrap();
    }
    app.stop().await;
}
