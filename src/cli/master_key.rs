//! `agentgate master-key rotate`: put a new master key first in the key file (keeping the
//! old ones for opening), re-seal every stored secret under it in batches, then drop the old
//! keys from the file. Running servers re-read the key file when it changes, so they open
//! both old and new ciphertexts throughout. Stopped half-way, running it again finishes.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{ArgGroup, Subcommand};
use zeroize::Zeroizing;

use super::output;
use super::terminal::{self, Piped};
use crate::config::{StoreArgs, MASTER_KEY_ENV};
use crate::crypto::rotate::{reseal_all, RotationLimits};
use crate::crypto::{verify_master_key, MasterKey, Sealer};
use crate::installation_audit::{Action, InstallationOrigin, FINISHED, STARTED, STOPPED};
use crate::store::{self, Store, StoreError};

/// Master key commands.
#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-seal every stored secret (Stripe keys, webhook and push secrets) under a new
    /// master key. Without a new key: finish a rotation that was stopped.
    #[command(group(ArgGroup::new("new_key").args(["new_key_file", "new_key_stdin", "generate"])))]
    Rotate {
        /// Read the new key (base64 of 32 bytes) from this file.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
        /// Read the new key (base64 of 32 bytes) from stdin.
        #[arg(long)]
        new_key_stdin: bool,
        /// Generate the new key (it is written only into the key file).
        #[arg(long)]
        generate: bool,
        /// Secrets re-sealed per transaction.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Stop after this many batches (run again to continue); default: until done.
        #[arg(long)]
        max_batches: Option<usize>,
    },
}

/// Runs a master key command.
pub async fn run(args: &StoreArgs, command: MasterKeyCommand) -> anyhow::Result<()> {
    let MasterKeyCommand::Rotate {
        new_key_file,
        new_key_stdin,
        generate,
        batch_size,
        max_batches,
    } = command;
    let source = args.master_key_source()?;
    let key_file = source.file_path().map(|p| p.to_path_buf());
    // Refused before a new key is read, so no one pastes one only to have it refused.
    if key_file.is_none() && (new_key_file.is_some() || new_key_stdin || generate) {
        bail!("the master key comes from {MASTER_KEY_ENV}: put the new key first in it (NEW,OLD), restart every instance with it, then run `agentgate master-key rotate` without a new key");
    }
    let new_key = match (new_key_file, new_key_stdin, generate) {
        (Some(path), _, _) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
            Some(MasterKey::decode(&text, &path.display().to_string())?)
        }
        (None, true, _) => {
            let prompt = "Paste the new master key (base64 of 32 bytes) and press Enter: ";
            let text = terminal::read_secret(prompt, Piped::All).await?;
            Some(MasterKey::decode(&text, "stdin")?)
        }
        (None, false, true) => Some(MasterKey::generate()),
        (None, false, false) => None,
    };
    let mut keys = MasterKey::load_all(source).context("cannot load the master key")?;
    let store = store::open(&args.database).await?;
    // The keys held must open this database before a new one is put in front of them.
    verify_master_key(store.as_ref(), &Sealer::with_previous(&keys[0], &keys[1..])).await?;
    // The rotation does not start unless its start is on record (`installation_audit`).
    let target = Sealer::new(new_key.as_ref().unwrap_or(&keys[0])).key_id_hex();
    record_rotation(store.as_ref(), &target, STARTED, None)
        .await
        .context(
            "cannot record the rotation's start in the installation's audit; nothing was changed",
        )?;
    if let (Some(new_key), Some(path)) = (new_key, &key_file) {
        if !keys[0].same_as(&new_key) {
            keys.retain(|key| !key.same_as(&new_key));
            keys.insert(0, new_key);
            MasterKey::write_key_file(path, &keys.iter().collect::<Vec<_>>())
                .with_context(|| format!("cannot write the key file {}", path.display()))?;
        }
    }
    let sealer = Sealer::with_previous(&keys[0], &keys[1..]);
    let limits = RotationLimits {
        batch_size,
        max_batches,
    };
    let report = reseal_all(store.as_ref(), &sealer, limits).await?;
    if !report.complete {
        let detail = format!("re-sealed {} secret(s)", report.resealed);
        record_rotation(store.as_ref(), &target, STOPPED, Some(detail))
            .await
            .context(END_NOT_RECORDED)?;
        output::line(format_args!(
            "re-sealed {} secret(s); stopped before the end: run `agentgate master-key rotate` again to continue",
            report.resealed
        ))?;
        return Ok(());
    }
    let mut dropped = false;
    if let (Some(path), true) = (&key_file, keys.len() > 1) {
        MasterKey::write_key_file(path, &[&keys[0]])
            .with_context(|| format!("cannot write the key file {}", path.display()))?;
        dropped = true;
        // A secret sealed by a server that had not yet seen the new key is caught here,
        // while the old keys are still in memory.
        let last = reseal_all(store.as_ref(), &sealer, limits).await?;
        if !last.complete {
            bail!("secrets kept changing during the rotation; run `agentgate master-key rotate` again");
        }
    }
    let detail = format!(
        "re-sealed {} secret(s); all {} on this key",
        report.resealed, report.on_current_key
    );
    record_rotation(store.as_ref(), &target, FINISHED, Some(detail))
        .await
        .context(END_NOT_RECORDED)?;
    output::line(format_args!(
        "re-sealed {} secret(s); all {} are on master key {}{}",
        report.resealed,
        report.on_current_key,
        sealer.key_id_hex(),
        if dropped {
            "; the previous keys were removed from the key file"
        } else {
            ""
        }
    ))?;
    Ok(())
}

/// Why the command fails when the rotation's end cannot be recorded: what it did stands, but
/// a missing record must not go unnoticed.
const END_NOT_RECORDED: &str =
    "the rotation's work is done, but its end could not be recorded in the installation's audit";

/// Writes one record of the rotation to the master key `target` (its id) to the
/// installation's audit.
async fn record_rotation(
    store: &dyn Store,
    target: &str,
    outcome: &'static str,
    detail: Option<String>,
) -> Result<(), StoreError> {
    let record =
        InstallationOrigin::cli().record(Action::MasterKeyRotated, Some(target), outcome, detail);
    store.record_installation(&record).await
}
