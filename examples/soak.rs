//! Soak driver: holds a steady mix of proxied reads and writes, signed webhook ingests and
//! one event-stream consumer against a release agentgate for a set time, then reports
//! throughput, errors, p99 and the server's resident memory and open file descriptors
//! after warm-up and at the end. `bench/soak.sh` starts the Stripe double and runs this.
//!
//! ```text
//! cargo run --release --example soak -- --upstream http://127.0.0.1:18081 [--duration 600]
//!     [--warm-up 30] [--rate 400] [--workers 16]
//! ```
//!
//! The upstream must be a loopback address: the soak never talks to any other host.
//! `AGENTGATE_BIN` overrides the binary (default `target/release/agentgate`). The exit
//! status is 1 when the run misses the bar: any error, memory growth of 10 % or more, or
//! more open file descriptors at the end than after warm-up.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgate::crypto::{verify_master_key, MasterKey, Sealer};
use agentgate::keys::{create_key, KeySpec};
use agentgate::webhooks::endpoints::{self, SigningSecret};
use agentgate::webhooks::signature;
use futures_util::StreamExt;

const WHSEC: &str = "whsec_soakSecret0123456789abcdef";
/// The key the shared Stripe double accepts (`../shared/bench/conf/upstream.nginx.conf`).
const STRIPE_KEY: &str = "sk_test_secret";
const WRITE_BODY: &str = "email=jennyrosen%40example.com&name=Jenny+Rosen&description=soak\
    &metadata[order_id]=6735&metadata[source]=soak&expand[]=default_source";

/// What one run is asked to do.
struct Settings {
    upstream: String,
    duration: Duration,
    warm_up: Duration,
    rate: u64,
    workers: u64,
}

/// One kind of request in the mix.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
    Ingest,
}

/// Latencies (microseconds) and errors of the measured phase, per kind.
#[derive(Default)]
struct Stats {
    latencies: [Vec<u32>; 3],
    errors: [u64; 3],
    first_errors: Vec<String>,
}

/// The server process's resident memory and open descriptors at one moment.
#[derive(Clone, Copy)]
struct Usage {
    rss_kib: u64,
    fds: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let binary =
        std::env::var("AGENTGATE_BIN").unwrap_or_else(|_| "target/release/agentgate".into());

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("soak.db").display());
    let master = MasterKey::generate();
    let master_b64 = master.to_base64().to_string();
    let sealer = Sealer::new(&master);
    let store = agentgate::store::open(&url).await?;
    verify_master_key(store.as_ref(), &sealer).await?;
    let workspace = store.ensure_workspace("default").await?.id;
    let origin = agentgate::audit::ChangeOrigin::cli("soak set-up".into());
    let stripe_key = agentgate::connections::stripe::StripeSecret::parse(STRIPE_KEY)?;
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
    let agent_key = create_key(store.as_ref(), &workspace, KeySpec::agent("soak"), &origin)
        .await?
        .key;
    drop(store);

    let mut child = Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--stripe-api-base", &settings.upstream])
        .env("AGENTGATE_DATABASE", &url)
        .env("AGENTGATE_MASTER_KEY", &master_b64)
        .env("AGENTGATE_LOG", "info")
        // The double holds a test-mode key; Stripe's 25/s test limit would cap the mix.
        .env("AGENTGATE_CONNECTION_RATE_TEST", "1000000000")
        .env_remove("AGENTGATE_MASTER_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
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
    // Warnings and errors the server logs count as errors of the run.
    let logged_problems = Arc::new(AtomicU64::new(0));
    let first_problem = Arc::new(Mutex::new(None::<String>));
    {
        let (count, first) = (logged_problems.clone(), first_problem.clone());
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if matches!(json["level"].as_str(), Some("WARN" | "ERROR")) {
                    count.fetch_add(1, Ordering::Relaxed);
                    first.lock().expect("not poisoned").get_or_insert(line);
                }
            }
        });
    }

    let result = soak(&settings, &addr, &endpoint.id.to_string(), &agent_key, pid).await;
    let _ = child.kill();
    let _ = child.wait();
    let passed = result?;
    let problems = logged_problems.load(Ordering::Relaxed);
    println!("server warnings/errors logged: {problems}");
    if let Some(line) = first_problem.lock().expect("not poisoned").as_ref() {
        println!("  first: {line}");
    }
    if !passed || problems > 0 {
        println!("result: FAIL");
        std::process::exit(1);
    }
    println!("result: PASS");
    Ok(())
}

/// Runs warm-up and measured phase; true when the run meets the bar.
async fn soak(
    settings: &Settings,
    addr: &str,
    endpoint: &str,
    key: &str,
    pid: u32,
) -> anyhow::Result<bool> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(settings.workers as usize + 1)
        .build()?;
    let streamed = Arc::new(AtomicU64::new(0));
    let stream_error = Arc::new(Mutex::new(None::<String>));
    let stream_task = tokio::spawn(consume_stream(
        client.clone(),
        format!("http://{addr}/v1/webhooks/{endpoint}/events/stream"),
        key.to_owned(),
        streamed.clone(),
        stream_error.clone(),
    ));

    let target = Target {
        read: format!("http://{addr}/v1/connections/stripe/customers?limit=3"),
        write: format!("http://{addr}/v1/connections/stripe/customers"),
        ingest: format!("http://{addr}/webhooks/ingest/{endpoint}"),
        key: key.to_owned(),
    };
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let ingested = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(settings.workers as f64 / settings.rate as f64);
    let mut tasks = Vec::new();
    for worker in 0..settings.workers {
        let (client, target) = (client.clone(), target.clone());
        let (measuring, stop, stats, ingested) = (
            measuring.clone(),
            stop.clone(),
            stats.clone(),
            ingested.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // 6 reads, 2 writes and 2 ingests in every 10 requests.
                let kind = match n % 10 {
                    0..=5 => Kind::Read,
                    6 | 7 => Kind::Write,
                    _ => Kind::Ingest,
                };
                let started = Instant::now();
                let outcome = target.send(&client, kind, worker, n).await;
                let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                if matches!(kind, Kind::Ingest) && outcome.is_ok() {
                    ingested.fetch_add(1, Ordering::Relaxed);
                }
                if measuring.load(Ordering::Relaxed) {
                    let mut stats = stats.lock().expect("not poisoned");
                    stats.latencies[kind as usize].push(micros);
                    if let Err(error) = outcome {
                        stats.errors[kind as usize] += 1;
                        if stats.first_errors.len() < 5 {
                            stats.first_errors.push(error);
                        }
                    }
                } else if let Err(error) = outcome {
                    eprintln!("warm-up error: {error}");
                }
                n += 1;
            }
        }));
    }

    tokio::time::sleep(settings.warm_up).await;
    let start = usage(pid)?;
    stats.lock().expect("not poisoned").errors = [0; 3];
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    println!(
        "after {}s warm-up: rss {} KiB, fds {}",
        settings.warm_up.as_secs(),
        start.rss_kib,
        start.fds
    );
    while started.elapsed() < settings.duration {
        let left = settings.duration.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        let now = usage(pid)?;
        let done: usize = stats
            .lock()
            .expect("not poisoned")
            .latencies
            .iter()
            .map(Vec::len)
            .sum();
        println!(
            "t={:>4}s requests {done:>8}  rss {} KiB  fds {}",
            started.elapsed().as_secs(),
            now.rss_kib,
            now.fds
        );
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let end = usage(pid)?;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    // Every ingested event must reach the stream consumer.
    let expected = ingested.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while streamed.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stream_task.abort();
    let streamed = streamed.load(Ordering::Relaxed);

    let stats = stats.lock().expect("not poisoned");
    Ok(report(
        settings,
        &stats,
        elapsed,
        start,
        end,
        expected,
        streamed,
        &stream_error,
    ))
}

/// Prints the summary; true when the run meets the bar.
#[allow(clippy::too_many_arguments)]
fn report(
    settings: &Settings,
    stats: &Stats,
    elapsed: Duration,
    start: Usage,
    end: Usage,
    ingested: u64,
    streamed: u64,
    stream_error: &Mutex<Option<String>>,
) -> bool {
    let total: usize = stats.latencies.iter().map(Vec::len).sum();
    let errors: u64 = stats.errors.iter().sum();
    let mut all: Vec<u32> = stats.latencies.iter().flatten().copied().collect();
    all.sort_unstable();
    println!(
        "soak: {}s measured after {}s warm-up, target {} req/s from {} workers (6 reads : 2 writes : 2 ingests) + 1 stream",
        elapsed.as_secs(),
        settings.warm_up.as_secs(),
        settings.rate,
        settings.workers
    );
    println!(
        "requests: {total}  throughput: {:.0} req/s  errors: {errors}  p50: {:.2} ms  p99: {:.2} ms",
        total as f64 / elapsed.as_secs_f64(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
    );
    for (kind, name) in ["read", "write", "ingest"].iter().enumerate() {
        let mut latencies = stats.latencies[kind].clone();
        latencies.sort_unstable();
        println!(
            "  {name:<6} {:>8} requests  errors {:>3}  p50 {:.2} ms  p99 {:.2} ms",
            latencies.len(),
            stats.errors[kind],
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
        );
    }
    for error in &stats.first_errors {
        println!("  error: {error}");
    }
    let stream_error = stream_error.lock().expect("not poisoned").clone();
    println!(
        "stream: {streamed} of {ingested} ingested events received{}",
        stream_error
            .as_ref()
            .map_or(String::new(), |e| format!(" ({e})"))
    );
    let growth = (end.rss_kib as f64 / start.rss_kib as f64 - 1.0) * 100.0;
    println!(
        "rss: {} KiB -> {} KiB ({growth:+.1} %)   fds: {} -> {}",
        start.rss_kib, end.rss_kib, start.fds, end.fds
    );
    errors == 0
        && streamed == ingested
        && stream_error.is_none()
        && growth < 10.0
        && end.fds <= start.fds
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

/// Where each kind of request goes, and the agent key.
#[derive(Clone)]
struct Target {
    read: String,
    write: String,
    ingest: String,
    key: String,
}

impl Target {
    /// Sends one request and reads its whole answer; any status but 200 is an error.
    async fn send(
        &self,
        client: &reqwest::Client,
        kind: Kind,
        worker: u64,
        n: u64,
    ) -> Result<(), String> {
        let request = match kind {
            Kind::Read => client.get(&self.read).bearer_auth(&self.key),
            Kind::Write => client
                .post(&self.write)
                .bearer_auth(&self.key)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Idempotency-Key", format!("soak-{worker}-{n}"))
                .body(WRITE_BODY),
            Kind::Ingest => {
                let payload = format!(
                    r#"{{"id":"evt_soak_{worker}_{n}","object":"event","type":"customer.created","created":1760000000,"livemode":false,"data":{{"object":{{"id":"cus_{n}","object":"customer","metadata":{{}}}}}}}}"#
                );
                let now = agentgate::time::now_millis() / 1000;
                let header = format!(
                    "t={now},v1={}",
                    signature::sign(WHSEC.as_bytes(), now, payload.as_bytes())
                );
                client
                    .post(&self.ingest)
                    .header("Stripe-Signature", header)
                    .header("Content-Type", "application/json")
                    .body(payload)
            }
        };
        let response = request.send().await.map_err(|e| format!("{e}"))?;
        let status = response.status();
        response.bytes().await.map_err(|e| format!("{e}"))?;
        if status != 200 {
            return Err(format!("status {status}"));
        }
        Ok(())
    }
}

/// Reads the endpoint's event stream, counting events, reconnecting never: a dropped
/// stream is an error of the run.
async fn consume_stream(
    client: reqwest::Client,
    url: String,
    key: String,
    received: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
) {
    let fail = |message: String| {
        error.lock().expect("not poisoned").get_or_insert(message);
    };
    let response = match client.get(&url).bearer_auth(&key).send().await {
        Ok(response) if response.status() == 200 => response,
        Ok(response) => return fail(format!("stream status {}", response.status())),
        Err(e) => return fail(format!("stream: {e}")),
    };
    let mut body = response.bytes_stream();
    let mut line = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return fail(format!("stream: {e}")),
        };
        for &byte in chunk.iter() {
            if byte == b'\n' {
                if line.starts_with(b"id:") {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                line.clear();
            } else {
                line.push(byte);
            }
        }
    }
    fail("the stream ended".into());
}

/// Resident memory (`VmRSS`) and the number of open descriptors of `pid`, from `/proc`.
fn usage(pid: u32) -> anyhow::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok(Usage { rss_kib, fds })
}

/// Reads the command line; the upstream must be on loopback.
fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        upstream: String::new(),
        duration: Duration::from_secs(600),
        warm_up: Duration::from_secs(30),
        rate: 400,
        workers: 16,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--upstream" => settings.upstream = value,
            "--duration" => settings.duration = Duration::from_secs(value.parse()?),
            "--warm-up" => settings.warm_up = Duration::from_secs(value.parse()?),
            "--rate" => settings.rate = value.parse()?,
            "--workers" => settings.workers = value.parse()?,
            _ => anyhow::bail!("unknown flag {flag}"),
        }
    }
    let host = settings
        .upstream
        .strip_prefix("http://")
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or_default();
    anyhow::ensure!(
        matches!(host, "127.0.0.1" | "localhost"),
        "--upstream must be http://127.0.0.1:PORT (a local Stripe double), not {:?}",
        settings.upstream
    );
    anyhow::ensure!(
        settings.rate > 0 && settings.workers > 0,
        "rate and workers must be positive"
    );
    Ok(settings)
}
