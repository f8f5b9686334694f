//! Secrets typed at a terminal: the Stripe key, a webhook signing secret, an operator's
//! password. Read from stdin like piped input, but with the terminal's echo off while the
//! line is typed, so the secret never shows on the screen, in a screen share or in the
//! terminal's scrollback. The terminal's settings are put back when the line is read, and
//! when the operator gives up with Ctrl-C.

use std::io::{BufRead, IsTerminal, Read};
use std::os::fd::AsFd;

use anyhow::Context;
use rustix::termios::{self, LocalModes, OptionalActions, Termios};
use tokio::signal::unix::{signal, SignalKind};
use zeroize::Zeroizing;

/// How much of stdin a secret is when it is piped in rather than typed.
pub enum Piped {
    /// Everything up to the end of the input.
    All,
    /// The first line.
    Line,
}

/// Reads a secret from stdin: from a terminal, one line typed with the echo off after
/// `prompt` on stderr; otherwise as much as `piped` says. Line breaks are left to the
/// secret's parser.
pub async fn read_secret(prompt: &str, piped: Piped) -> anyhow::Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        return read_hidden_line(prompt).await;
    }
    let mut text = Zeroizing::new(String::new());
    let mut stdin = std::io::stdin().lock();
    match piped {
        Piped::All => stdin.read_to_string(&mut text),
        Piped::Line => stdin.read_line(&mut text),
    }
    .context("cannot read stdin")?;
    Ok(text)
}

/// Reads one line from stdin, a terminal, with its echo off after `prompt` on stderr.
/// Typing is read on a blocking thread so that Ctrl-C, which ends the command, can put the
/// terminal's echo back first: otherwise the shell would be left not showing what is typed.
async fn read_hidden_line(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    // Listening for Ctrl-C before the echo goes off: from then on it must not end the
    // command before the echo is back.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    let echo_off = EchoOff::start().context("cannot turn the terminal's echo off")?;
    eprint!("{prompt}");
    let typed = tokio::task::spawn_blocking(|| {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    tokio::select! {
        typed = typed => {
            drop(echo_off);
            Ok(typed.context("the terminal reader failed")?.context("cannot read stdin")?)
        }
        _ = interrupt.recv() => {
            drop(echo_off);
            eprintln!();
            // The reader thread still waits for a line no one will type; the command ends
            // here, as Ctrl-C ends it anywhere else (128 + SIGINT).
            std::process::exit(130);
        }
    }
}

/// The terminal on stdin with its echo turned off, until dropped. The line break is still
/// shown (`ECHONL`), so what follows starts on a line of its own.
struct EchoOff {
    saved: Termios,
}

impl EchoOff {
    fn start() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        // `Flush`, as getpass does: what was typed before the prompt is dropped, not read
        // as (part of) the secret.
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Flush, &quiet)?;
        Ok(Self { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let restored =
            termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
        if let Err(error) = restored {
            eprintln!(
                "agentgate: cannot turn the terminal's echo back on ({error}); `stty echo` does"
            );
        }
    }
}
