//! A second agentgate instance on a [`TestApp`]'s database, master key and Stripe double,
//! as a team running several instances behind a load balancer has.

use std::net::SocketAddr;

use agentgate::app::{App, Listeners};
use agentgate::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::app::{TestApp, TestOptions};

/// The peer's instance name (the first instance is `test`, as `Config::for_tests` names it).
pub const PEER_INSTANCE: &str = "peer";

/// Another instance serving the same database in this process.
pub struct Peer {
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Peer {
    /// Starts an instance beside `first` with these options (the stream, rate and push
    /// settings of `options` apply; the database, key and Stripe base are `first`'s).
    pub async fn start(first: &TestApp, options: TestOptions) -> Self {
        let base = first.double.base_url().parse().expect("stripe base");
        let mut config = Config::for_tests(&first.db.url, first.master(), base);
        config.instance = PEER_INSTANCE.parse().expect("a valid instance name");
        config.connection_rates = options.connection_rates;
        config.event_stream = options.event_stream;
        config.upstream.timeout = options.upstream_timeout;
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = main.local_addr().unwrap();
        let app = App::build(config)
            .await
            .expect("the second instance builds");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            main,
            sdk: Vec::new(),
        };
        let task = tokio::spawn(app.serve(listeners, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops gracefully and waits until it has.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task
            .await
            .expect("serve task")
            .expect("serve returns Ok");
    }
}
