//! `agentgate operators create|reset-password NAME`: the people who sign in to the
//! dashboard. The password is read from stdin (one line), never from arguments, so it
//! stays out of shell history and process listings.

use anyhow::Context;
use clap::Subcommand;
use zeroize::Zeroizing;

use super::terminal::{self, Piped};
use crate::config::StoreArgs;
use crate::installation_audit::InstallationOrigin;
use crate::operators;
use crate::store;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Create an operator; the password (at least 12 characters) is read from stdin.
    Create {
        /// Sign-in name (letters, digits, '.', '@', '-', '_').
        name: String,
    },
    /// Set a new password (read from stdin) and end the operator's sessions.
    ResetPassword {
        /// Sign-in name.
        name: String,
    },
}

/// Runs an operator command.
pub async fn run(args: &StoreArgs, command: OperatorsCommand) -> anyhow::Result<()> {
    let store = store::open(&args.database).await?;
    match command {
        OperatorsCommand::Create { name } => {
            operators::check_name(&name)?;
            let password = read_password().await?;
            operators::create_operator(
                store.as_ref(),
                &name,
                &password,
                &InstallationOrigin::cli(),
            )
            .await?;
            eprintln!("operator {name} created; sign in at /login");
        }
        OperatorsCommand::ResetPassword { name } => {
            let password = read_password().await?;
            operators::reset_password(store.as_ref(), &name, &password, &InstallationOrigin::cli())
                .await?;
            eprintln!("password of {name} changed; their sessions have ended");
        }
    }
    Ok(())
}

/// Reads one line from stdin (typed at a terminal after a prompt, not shown), without its
/// line break.
async fn read_password() -> anyhow::Result<Zeroizing<String>> {
    let prompt = format!(
        "Password (at least {} characters): ",
        operators::MIN_PASSWORD_LEN
    );
    let line = terminal::read_secret(&prompt, Piped::Line)
        .await
        .context("cannot read the password from stdin")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    operators::check_password(&trimmed)?;
    Ok(trimmed)
}
