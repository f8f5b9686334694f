//! Runs the real `agentgate` binary against a test's database.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::process::{Child, Command, Output, Stdio};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::LocalModes;

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

/// A command whose stdin is a terminal (a pseudo-terminal the test holds the other end of),
/// as when an operator types at a shell.
pub struct AtTerminal {
    child: Child,
    terminal: File,
    stderr: Vec<u8>,
}

impl AtTerminal {
    /// Starts `agentgate ARGS` on the database and waits for its prompt on stderr (text
    /// ending in ": "), after which the command reads what is typed.
    pub fn start(database: &str, master_key: &str, args: &[&str]) -> Self {
        let terminal = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        rustix::pty::grantpt(&terminal).unwrap();
        rustix::pty::unlockpt(&terminal).unwrap();
        let name = rustix::pty::ptsname(&terminal, Vec::new()).unwrap();
        let stdin = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY,
            Mode::empty(),
        )
        .unwrap();
        let mut child = binary()
            .args(args)
            .env("AGENTGATE_DATABASE", database)
            .env("AGENTGATE_MASTER_KEY", master_key)
            .env_remove("AGENTGATE_MASTER_KEY_FILE")
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agentgate runs");
        let mut stderr = Vec::new();
        let pipe = child.stderr.as_mut().unwrap();
        while !stderr.ends_with(b": ") {
            let mut chunk = [0; 256];
            let read = pipe.read(&mut chunk).unwrap();
            assert!(read > 0, "no prompt: {}", String::from_utf8_lossy(&stderr));
            stderr.extend_from_slice(&chunk[..read]);
        }
        Self {
            child,
            terminal: File::from(terminal),
            stderr,
        }
    }

    /// Types `text` at the terminal.
    pub fn type_text(&mut self, text: &str) {
        self.terminal.write_all(text.as_bytes()).unwrap();
    }

    /// Sends the command SIGINT, as Ctrl-C at its shell does.
    pub fn interrupt(&self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    }

    /// Waits for the command to end: its output (stderr with the prompt), what the terminal
    /// showed, and whether the terminal echoes again.
    pub fn finish(mut self) -> Finished {
        let mut rest = Vec::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut rest)
            .unwrap();
        self.stderr.extend(rest);
        let mut output = self.child.wait_with_output().expect("agentgate finishes");
        output.stderr = self.stderr;
        // The command has ended, so the terminal holds all it will show.
        rustix::fs::fcntl_setfl(&self.terminal, OFlags::NONBLOCK).unwrap();
        let mut screen = Vec::new();
        let mut chunk = [0; 1024];
        loop {
            match self.terminal.read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => screen.extend_from_slice(&chunk[..read]),
                // No more to read; EIO once no process holds the terminal open.
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(5) => break,
                Err(e) => panic!("reading the terminal: {e}"),
            }
        }
        let modes = rustix::termios::tcgetattr(&self.terminal)
            .unwrap()
            .local_modes;
        Finished {
            output,
            screen: String::from_utf8_lossy(&screen).into_owned(),
            echoes: modes.contains(LocalModes::ECHO),
        }
    }
}

/// How a command run at a terminal ended.
pub struct Finished {
    pub output: Output,
    /// Everything the terminal showed of what was typed (its echo).
    pub screen: String,
    /// Whether the terminal echoes what is typed again.
    pub echoes: bool,
}
