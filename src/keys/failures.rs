//! Brute-force protection: failed authentications counted per client address in a fixed
//! one-minute window. Past the limit the address gets 429 for every request until its
//! window ends, a valid key included (otherwise the answer would tell a guess that hit),
//! but for the health checks and metrics, which take no key; other addresses are
//! unaffected. The table is bounded, so an attacker with many addresses cannot grow it
//! without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::time::Clock;

/// The window failed authentications are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at most; past it, expired windows are dropped first and, if none has
/// expired, new addresses are not tracked until one does.
const MAX_TRACKED: usize = 100_000;

/// Failed authentications per client address.
pub struct AuthFailures {
    limit: Option<NonZeroU32>,
    clock: Arc<dyn Clock>,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Duration,
    failures: u32,
}

impl AuthFailures {
    /// At most `limit` failures per address per minute (`None`: no limit).
    pub fn new(limit: Option<NonZeroU32>, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit,
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds the address must wait, if it used up its failures in this window.
    pub fn blocked(&self, address: IpAddr) -> Option<u64> {
        let limit = self.limit?.get();
        let now = self.clock.monotonic();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.get(&address)?;
        let ends = window.started + WINDOW;
        (window.failures >= limit && now < ends).then(|| (ends - now).as_secs().max(1))
    }

    /// Counts one failed authentication from the address; true when this one used up its
    /// failures, so the address is blocked from now until its window ends.
    pub fn failed(&self, address: IpAddr) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let now = self.clock.monotonic();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&address) {
            windows.retain(|_, w| now < w.started + WINDOW);
            if windows.len() >= MAX_TRACKED {
                return false;
            }
        }
        let window = windows.entry(address).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= window.started + WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
        window.failures == limit.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    #[test]
    fn blocks_one_address_past_the_limit_until_its_window_ends() {
        let clock = Arc::new(ManualClock::at(Duration::from_secs(1_000)));
        let failures = AuthFailures::new(NonZeroU32::new(3), clock.clone());
        let attacker: IpAddr = [127, 0, 0, 2].into();
        let other: IpAddr = [127, 0, 0, 1].into();
        for n in 1..=3 {
            assert_eq!(failures.blocked(attacker), None);
            assert_eq!(failures.failed(attacker), n == 3, "blocked by the third");
        }
        assert_eq!(failures.blocked(attacker), Some(60));
        assert!(!failures.failed(attacker), "blocked once a window");
        assert_eq!(failures.blocked(other), None);
        clock.advance(WINDOW);
        assert_eq!(failures.blocked(attacker), None);
    }
}
