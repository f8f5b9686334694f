//! Runs the real `agentgate` binary against a test's database.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The built binary.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agentgate"))
}

/// Runs `agentgate ARGS` on the database with the master key from the environment,
/// feeding `stdin`.
pub fn run(database: &str, master_key: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = binary()
        .args(args)
        .env("AGENTGATE_DATABASE", database)
        .env("AGENTGATE_MASTER_KEY", master_key)
        .env_remove("AGENTGATE_MASTER_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentgate runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("agentgate finishes")
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
