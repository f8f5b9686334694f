//! The name a serving process records in the request log (RELIABILITY section 3's
//! "instance"): with several instances on one PostgreSQL database, it says which one served
//! a request or made a change, so an operator knows whose output and metrics to read.

use std::fmt;
use std::str::FromStr;

/// Longest name accepted.
const MAX_LEN: usize = 64;
/// What an instance is called when the host's name cannot be one.
const FALLBACK: &str = "agentgate";

/// An instance's name: 1 to 64 ASCII letters, digits, `.`, `-`, `_` or `:`, so it can be
/// shown and filtered on anywhere without escaping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceName(String);

impl InstanceName {
    /// The host's name (a container's or pod's is its own), or `agentgate` when the host's
    /// name is not a valid instance name. Instances sharing a host share it: give each
    /// its own with `--instance`.
    pub fn of_host() -> Self {
        gethostname::gethostname()
            .into_string()
            .ok()
            .and_then(|name| name.parse().ok())
            .unwrap_or_else(|| Self(FALLBACK.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if text.is_empty() || text.len() > MAX_LEN || !text.chars().all(allowed) {
            return Err(format!(
                "an instance name is 1 to {MAX_LEN} ASCII letters, digits, '.', '-', '_' or ':'"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_plain_text() {
        for good in ["gw-1", "ip-10-0-0-1.ec2.internal", "host:8080", "a"] {
            assert_eq!(good.parse::<InstanceName>().unwrap().as_str(), good);
        }
        let long = "x".repeat(MAX_LEN + 1);
        for bad in ["", "two words", "gw/1", "é", "a\nb", long.as_str()] {
            assert!(bad.parse::<InstanceName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_hosts_name_is_always_a_valid_name() {
        let name = InstanceName::of_host();
        assert_eq!(name.as_str().parse::<InstanceName>(), Ok(name));
    }
}
