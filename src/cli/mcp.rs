//! `agentgate mcp --url URL`: a local stdio MCP server relaying to a remote agentgate (see
//! [`crate::mcp::stdio`]). The key is read from `AGENTGATE_KEY` only, never from the
//! command line, where other users of the machine could read it.

use anyhow::Context as _;
use clap::Args;
use secrecy::SecretString;

/// The environment variable holding the agentgate key.
const KEY_VARIABLE: &str = "AGENTGATE_KEY";

/// Arguments of `agentgate mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The remote agentgate's MCP endpoint, e.g. `https://agentgate.example.com/mcp`. The
    /// agent key is read from the AGENTGATE_KEY environment variable.
    #[arg(long)]
    pub url: String,
}

/// Serves MCP on stdin/stdout until the client closes it.
pub async fn run(args: McpArgs) -> anyhow::Result<()> {
    let key = std::env::var(KEY_VARIABLE)
        .ok()
        .filter(|key| !key.trim().is_empty())
        .with_context(|| format!("set {KEY_VARIABLE} to the agent key"))?;
    crate::mcp::stdio::relay(&args.url, SecretString::from(key.trim().to_owned())).await
}
