//! `agentgate events replay ENDPOINT (--event EVT | --since T --until T) [--destination ID]`:
//! push stored events again, as new deliveries due at once (a running server attempts
//! them within its poll interval).

use anyhow::bail;
use clap::Args;

use super::{open_workspace, output};
use crate::audit::ChangeOrigin;
use crate::config::StoreArgs;
use crate::ids::{DestinationId, EndpointId};
use crate::store::push::EventSelector;
use crate::webhooks::push;

/// Arguments of `agentgate events replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The webhook endpoint whose events to push again (`whe_...`).
    pub endpoint: String,
    /// One event, by Stripe's id (`evt_...`).
    #[arg(long, conflicts_with_all = ["since", "until"], required_unless_present = "since")]
    pub event: Option<String>,
    /// Events received at or after this time (RFC 3339, `2026-01-31T12:00:00Z`).
    #[arg(long, requires = "until", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Events received before this time (RFC 3339).
    #[arg(long, requires = "since", value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only to this destination (default: every enabled destination whose filter matches).
    #[arg(long)]
    pub destination: Option<String>,
}

fn parse_time(text: &str) -> Result<i64, String> {
    let at = humantime::parse_rfc3339_weak(text).map_err(|e| format!("{e}: {text:?}"))?;
    let since_epoch = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "before 1970".to_owned())?;
    i64::try_from(since_epoch.as_millis()).map_err(|e| e.to_string())
}

/// Runs `agentgate events replay`.
pub async fn run(args: &StoreArgs, replay: ReplayArgs) -> anyhow::Result<()> {
    let selector = match (replay.event, replay.since, replay.until) {
        (Some(event), None, None) => EventSelector::One(event),
        (None, Some(since), Some(until)) if since < until => EventSelector::Range { since, until },
        (None, Some(_), Some(_)) => bail!("--since must be before --until"),
        _ => bail!("give --event EVT, or --since and --until"),
    };
    let (store, workspace) = open_workspace(args).await?;
    let origin = ChangeOrigin::cli(command(
        &replay.endpoint,
        &selector,
        replay.destination.as_deref(),
    ));
    let endpoint = EndpointId::from_stored(replay.endpoint);
    let destination = replay.destination.map(DestinationId::from_stored);
    let created = push::replay(
        store.as_ref(),
        &workspace,
        &endpoint,
        &selector,
        destination.as_ref(),
        crate::time::now_millis(),
        &origin,
    )
    .await?;
    output::line(format_args!("{created} deliveries queued"))?;
    Ok(())
}

/// The command as its audit record names it: the endpoint, which events and where to, with
/// the times in RFC 3339 as they are given.
fn command(endpoint: &str, selector: &EventSelector, destination: Option<&str>) -> String {
    let mut command = format!("events replay {endpoint}");
    match selector {
        EventSelector::One(event) => command.push_str(&format!(" --event {event}")),
        EventSelector::Range { since, until } => command.push_str(&format!(
            " --since {} --until {}",
            crate::time::rfc3339(*since),
            crate::time::rfc3339(*until)
        )),
    }
    if let Some(destination) = destination {
        command.push_str(&format!(" --destination {destination}"));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_the_endpoint_the_events_and_the_destination() {
        let one = EventSelector::One("evt_1".into());
        assert_eq!(
            command("whe_1", &one, None),
            "events replay whe_1 --event evt_1"
        );
        let range = EventSelector::Range {
            since: 1_769_817_600_000,
            until: 1_769_904_000_500,
        };
        assert_eq!(
            command("whe_1", &range, Some("dst_2")),
            "events replay whe_1 --since 2026-01-31T00:00:00.000Z \
             --until 2026-02-01T00:00:00.500Z --destination dst_2"
        );
    }
}
