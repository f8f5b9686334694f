//! SIGTERM: stop accepting, let in-flight requests finish, write the request log, exit 0.

use crate::support::cli;
use crate::support::served::{Provisioned, ServedProcess};
use crate::support::stripe_double::Reply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let Provisioned {
        double,
        db,
        master,
        key,
    } = Provisioned::new("drain").await;
    double.respond(Reply::HoldUntilReleased);
    let server = ServedProcess::start(&db.url, &master, &double.base_url(), "info");
    let url = format!("http://{}/v1/connections/stripe/customers", server.addr);
    let in_flight = tokio::spawn(reqwest::Client::new().get(url).bearer_auth(key).send());
    double.wait_for(1).await;
    server.terminate();
    let addr = server.addr;
    let refused = crate::support::eventually(
        std::time::Duration::from_secs(5),
        "the listener to close",
        || async move {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    );
    refused.await;
    double.release();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"id":"cus_held","object":"customer"}"#
    );
    let (status, logs) = server.wait();
    assert!(status.success(), "exit status {status:?}: {logs}");
    let logged = cli::run(&db.url, &master, &["logs", "list", "--json"], "");
    let entries: serde_json::Value = serde_json::from_str(&cli::stdout(&logged)).unwrap();
    let proxied = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["via"] == "http");
    assert_eq!(
        proxied.count(),
        1,
        "the drained request was logged before exit"
    );
}

/// With `--shutdown-delay`, SIGTERM first turns `/readyz` to 503 while requests are still
/// served, so a load balancer sees the instance leave before its listener closes; then the
/// process drains and exits 0 as without a delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_delay_keeps_serving_while_readyz_says_draining() {
    let Provisioned {
        double,
        db,
        master,
        key,
    } = Provisioned::new("delay").await;
    let server = ServedProcess::start_with(
        &db.url,
        &master,
        &double.base_url(),
        "info",
        &[("AGENTGATE_SHUTDOWN_DELAY", "5s")],
    );
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    server.terminate();
    crate::support::eventually(
        std::time::Duration::from_secs(4),
        "/readyz to answer 503",
        || async {
            let response = client.get(format!("{base}/readyz")).send().await.ok()?;
            (response.status() == 503).then_some(())
        },
    )
    .await;
    // A new connection, not one kept alive from before the signal.
    let fresh = reqwest::Client::new();
    let served = fresh
        .get(format!("{base}/v1/connections/stripe/customers"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("still accepting during the delay");
    assert_eq!(served.status(), 200);
    let (status, logs) = server.wait();
    assert!(status.success(), "exit status {status:?}: {logs}");
    assert!(
        logs.contains("still serving until the delay ends"),
        "{logs}"
    );
}
