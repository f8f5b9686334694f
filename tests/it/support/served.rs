//! `agentgate serve` as a child process, for what only a real process shows: its log
//! output, its exit code, and how it handles SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::backend::{Backend, TestDb};
use super::cli::{self, binary};
use super::stripe_double::StripeDouble;
use super::TEST_SECRET;

/// What a process test starts from, set up through the CLI as an operator would: a Stripe
/// double, a fresh SQLite database with the `stripe` connection holding the test secret,
/// its master key, and one agent key.
pub struct Provisioned {
    pub double: StripeDouble,
    pub db: TestDb,
    pub master: String,
    pub key: String,
}

impl Provisioned {
    /// Sets it up, the agent key named `key_name`.
    pub async fn new(key_name: &str) -> Self {
        let double = StripeDouble::start().await;
        let db = TestDb::create(Backend::Sqlite).await;
        let master = agentgate::crypto::MasterKey::generate()
            .to_base64()
            .to_string();
        let set = cli::run(
            &db.url,
            &master,
            &["connections", "set", "stripe"],
            TEST_SECRET,
        );
        assert!(set.status.success(), "{}", cli::stderr(&set));
        let created = cli::run(
            &db.url,
            &master,
            &["keys", "create", "--name", key_name],
            "",
        );
        assert!(created.status.success(), "{}", cli::stderr(&created));
        let key = cli::stdout(&created).trim().to_owned();
        Self {
            double,
            db,
            master,
            key,
        }
    }
}

/// A running server process; killed if the test ends (or fails) without waiting for it.
pub struct ServedProcess {
    child: Child,
    /// The main listener's address, read from its log.
    pub addr: SocketAddr,
    logs: Option<JoinHandle<String>>,
}

impl ServedProcess {
    /// Starts `agentgate serve` with JSON logs at the given level and waits until it listens.
    pub fn start(database: &str, master_key: &str, stripe_base: &str, log_level: &str) -> Self {
        Self::start_with(database, master_key, stripe_base, log_level, &[])
    }

    /// [`ServedProcess::start`] with more `AGENTGATE_...` settings in the environment.
    pub fn start_with(
        database: &str,
        master_key: &str,
        stripe_base: &str,
        log_level: &str,
        settings: &[(&str, &str)],
    ) -> Self {
        let mut command = binary();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .envs(settings.iter().copied())
            .env("AGENTGATE_DATABASE", database)
            .env("AGENTGATE_MASTER_KEY", master_key)
            .env("AGENTGATE_STRIPE_API_BASE", stripe_base)
            .env("AGENTGATE_LOG", log_level)
            .env_remove("AGENTGATE_MASTER_KEY_FILE");
        Self::spawn(command)
    }

    /// Runs a prepared command that ends in `agentgate serve --log-format json` (a wrapper
    /// such as `prlimit` may come first) and waits until it listens.
    pub fn spawn(mut command: std::process::Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agentgate serve starts");
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (addr_tx, addr_rx) = mpsc::channel();
        let logs = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                    if json["message"] == "agentgate listening" {
                        let _ =
                            addr_tx.send(json["listen"].as_str().unwrap_or_default().to_owned());
                    }
                }
                all.push_str(&line);
                all.push('\n');
            }
            std::io::read_to_string(stdout)
                .map(|out| all.push_str(&out))
                .ok();
            all
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its address")
            .parse()
            .expect("a socket address");
        Self {
            child,
            addr,
            logs: Some(logs),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(&self) {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status and everything it printed.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().expect("wait for agentgate");
        let logs = self.logs.take().expect("logs are read once");
        (status, logs.join().expect("log reader"))
    }
}

impl Drop for ServedProcess {
    fn drop(&mut self) {
        // Nothing to do after `wait`; otherwise a failed test must not leave a server behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
