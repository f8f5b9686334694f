//! The installation's own audit: what belongs to no one workspace and so to no workspace's
//! request log. Workspaces created, dashboard operators created and their passwords reset,
//! sign-ins to the dashboard (accepted and refused), and master-key rotations
//! (`../shared/RELIABILITY.md`, section 3). `agentgate audit list` and the dashboard's
//! Audit page read it.
//!
//! A change (a workspace, an operator, a password, a session) is written with its record in
//! one transaction, so a change whose record cannot be written is not made: like the
//! workspaces' secret and key management, the installation's fails closed. A refused
//! sign-in changes nothing and is recorded on its own; a record that cannot be written then
//! is logged and the refusal stands. A rotation writes a record before it re-seals anything
//! (and does not start without it) and one when it is done.
//!
//! A record holds names, never a password, a token or a key. A sign-in by a name no
//! operator has records no name: people type passwords into name fields.

use std::net::IpAddr;

use crate::store::InstallationRecord;

/// Outcome of a change that went through.
pub const APPLIED: &str = crate::audit::APPLIED;
/// Outcome of a refused sign-in.
pub const REFUSED: &str = "refused";
/// Outcome of a master-key rotation's first record.
pub const STARTED: &str = "started";
/// Outcome of a master-key rotation's last record: every secret is on the new key.
pub const FINISHED: &str = "finished";
/// Outcome of a master-key rotation's last record: it stopped at `--max-batches`.
pub const STOPPED: &str = "stopped";

/// Why a sign-in was refused: the name is an operator's, the password is not theirs.
pub const WRONG_PASSWORD: &str = "wrong_password";
/// Why a sign-in was refused: no operator has the name.
pub const UNKNOWN_NAME: &str = "unknown_name";

/// What the installation's audit records, named after the surface in the record's `action`
/// (`cli.workspaces.create`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A workspace created.
    WorkspaceCreated,
    /// A dashboard operator created.
    OperatorCreated,
    /// An operator's password replaced (their sessions end with it).
    PasswordReset,
    /// A sign-in to the dashboard, accepted or refused.
    SignIn,
    /// An operator signing out of the dashboard.
    SignOut,
    /// Every stored secret re-sealed under a new master key.
    MasterKeyRotated,
}

impl Action {
    /// The name after the surface.
    pub fn name(self) -> &'static str {
        match self {
            Action::WorkspaceCreated => "workspaces.create",
            Action::OperatorCreated => "operators.create",
            Action::PasswordReset => "operators.reset_password",
            Action::SignIn => "operators.sign_in",
            Action::SignOut => "operators.sign_out",
            Action::MasterKeyRotated => "master_key.rotate",
        }
    }
}

/// Who acts, through which surface, from where: everything a record holds but what was
/// done.
#[derive(Clone, Debug)]
pub struct InstallationOrigin {
    via: &'static str,
    actor: String,
    client: Option<IpAddr>,
}

impl InstallationOrigin {
    /// Someone with access to the database, running the CLI.
    pub fn cli() -> Self {
        Self {
            via: "cli",
            actor: "cli".to_owned(),
            client: None,
        }
    }

    /// The signed-in dashboard operator `name`, from `client`.
    pub fn operator(name: &str, client: Option<IpAddr>) -> Self {
        Self {
            via: "dashboard",
            actor: format!("operator:{name}"),
            client,
        }
    }

    /// A browser holding the setup link `serve` printed, from `client`.
    pub fn setup_link(client: Option<IpAddr>) -> Self {
        Self {
            via: "dashboard",
            actor: "setup_link".to_owned(),
            client,
        }
    }

    /// A browser that is not signed in and gave a name no operator has.
    pub fn visitor(client: Option<IpAddr>) -> Self {
        Self {
            via: "dashboard",
            actor: "visitor".to_owned(),
            client,
        }
    }

    /// The record of `action` concerning `subject` (a workspace's or operator's name) that
    /// went through.
    pub fn applied(&self, action: Action, subject: &str) -> InstallationRecord {
        self.record(action, Some(subject), APPLIED, None)
    }

    /// The record of `action` with any outcome, and its detail: why a sign-in was refused,
    /// what a rotation did.
    pub fn record(
        &self,
        action: Action,
        subject: Option<&str>,
        outcome: &'static str,
        detail: Option<String>,
    ) -> InstallationRecord {
        InstallationRecord {
            created_at: crate::time::now_millis(),
            request_id: crate::proxy::new_request_id(),
            via: self.via,
            actor: self.actor.clone(),
            action: format!("{}.{}", self.via, action.name()),
            subject: subject.map(str::to_owned),
            outcome,
            detail,
            client: self.client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_the_surface_the_actor_and_the_subject() {
        let cli = InstallationOrigin::cli().applied(Action::WorkspaceCreated, "acme");
        assert_eq!(cli.action, "cli.workspaces.create");
        assert_eq!((cli.via, cli.actor.as_str()), ("cli", "cli"));
        assert_eq!(
            (cli.subject.as_deref(), cli.outcome),
            (Some("acme"), APPLIED)
        );
        assert!(cli.request_id.starts_with("agr_"));
        assert_eq!(cli.client, None);

        let client = Some(IpAddr::from([10, 0, 0, 7]));
        let refused = InstallationOrigin::operator("ada", client).record(
            Action::SignIn,
            Some("ada"),
            REFUSED,
            Some(WRONG_PASSWORD.into()),
        );
        assert_eq!(refused.action, "dashboard.operators.sign_in");
        assert_eq!(refused.actor, "operator:ada");
        assert_eq!(refused.outcome, REFUSED);
        assert_eq!(refused.detail.as_deref(), Some(WRONG_PASSWORD));
        assert_eq!(refused.client, client);

        let setup = InstallationOrigin::setup_link(None).applied(Action::OperatorCreated, "ada");
        assert_eq!(
            (setup.actor.as_str(), setup.action.as_str()),
            ("setup_link", "dashboard.operators.create")
        );
        let visitor = InstallationOrigin::visitor(None).record(
            Action::SignIn,
            None,
            REFUSED,
            Some(UNKNOWN_NAME.into()),
        );
        assert_eq!((visitor.actor.as_str(), visitor.subject), ("visitor", None));
    }
}
