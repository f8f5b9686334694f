//! Webhook ingest benchmark: starts the release binary (`agentgate serve`) on a fresh SQLite
//! database (durable commits: `synchronous=FULL` for events, group commit), posts signed
//! Stripe events from 32 concurrent senders, and prints throughput (events/s) and p50/p99
//! time to 2xx.
//!
//! ```text
//! cargo build --release && cargo run --release --example ingest_bench [EVENTS] [SENDERS]
//! ```
//!
//! `AGENTGATE_BIN` overrides the binary (default `target/release/agentgate`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgate::crypto::{verify_master_key, MasterKey, Sealer};
use agentgate::webhooks::endpoints::{self, SigningSecret};
use agentgate::webhooks::signature;

const WHSEC: &str = "whsec_benchmarkSecret0123456789abcdef";
const WARM_UP: usize = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let senders: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    let binary =
        std::env::var("AGENTGATE_BIN").unwrap_or_else(|_| "target/release/agentgate".into());

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let master = MasterKey::generate();
    let master_b64 = master.to_base64().to_string();
    let sealer = Sealer::new(&master);
    let store = agentgate::store::open(&url).await?;
    verify_master_key(store.as_ref(), &sealer).await?;
    let workspace = store.ensure_workspace("default").await?.id;
    let origin = agentgate::audit::ChangeOrigin::cli("ingest_bench set-up".into());
    let stripe_key = agentgate::connections::stripe::StripeSecret::parse(
        "sk_test_51BenchmarkKey0123456789abcdefghijklmnopqrstuvwxyz",
    )?;
    agentgate::connections::set_stripe_connection(
        store.as_ref(),
        &sealer,
        &workspace,
        "stripe",
        &stripe_key,
        &origin,
    )
    .await?;
    let endpoint =
        endpoints::create_endpoint(store.as_ref(), &workspace, "stripe", &[], &origin).await?;
    endpoints::add_secret(
        store.as_ref(),
        &sealer,
        &endpoint,
        &SigningSecret::parse(WHSEC)?,
        None,
        &origin,
    )
    .await?;
    drop(store);

    let mut child = Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("AGENTGATE_DATABASE", &url)
        .env("AGENTGATE_MASTER_KEY", &master_b64)
        .env("AGENTGATE_LOG", "info")
        .env_remove("AGENTGATE_MASTER_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("server exited"))??;
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if json["message"] == "agentgate listening" {
            break json["listen"].as_str().unwrap_or_default().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let ingest = format!("http://{addr}/webhooks/ingest/{}", endpoint.id);

    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(senders)
        .build()?;
    run(&client, &ingest, WARM_UP, senders, "warm").await?;
    let started = Instant::now();
    let mut latencies = run(&client, &ingest, events, senders, "bench").await?;
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "ingest: {events} events, {senders} concurrent senders, SQLite synchronous=FULL (group commit)"
    );
    println!(
        "throughput: {:.0} events/s   p50: {:.2} ms   p99: {:.2} ms   max: {:.2} ms",
        events as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().expect("some events")),
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends `total` distinct signed events from `senders` tasks; every answer must be 200.
async fn run(
    client: &reqwest::Client,
    url: &str,
    total: usize,
    senders: usize,
    tag: &'static str,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let payload = format!(
                    r#"{{"id":"evt_{tag}_{n:08}","object":"event","type":"customer.created","created":1760000000,"livemode":false,"data":{{"object":{{"id":"cus_{n}","object":"customer","email":"bench{n}@example.com","metadata":{{}}}}}}}}"#
                );
                let now = agentgate::time::now_millis() / 1000;
                let header = format!(
                    "t={now},v1={}",
                    signature::sign(WHSEC.as_bytes(), now, payload.as_bytes())
                );
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("Stripe-Signature", header)
                    .header("Content-Type", "application/json")
                    .body(payload)
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                latencies.push(sent.elapsed());
                anyhow::ensure!(status == 200, "event {n}: status {status}");
            }
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}
