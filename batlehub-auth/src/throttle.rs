//! Failed authentications counted per client address, checked before expensive verification.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use batlehub_core::{AuthThrottled, Clock, SystemClock};
use chrono::{DateTime, Utc};
use http::{Extensions, HeaderMap};
use ipnet::IpNet;
use parking_lot::Mutex;

/// The most client addresses tracked; the table is swept of expired windows when full, and
/// cleared if that frees nothing (an attacker spraying addresses resets the limiter rather
/// than growing memory).
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: DateTime<Utc>,
    failures: u32,
}

/// At most `max` failed authentications per client address in each `window`.
///
/// While a client is over its limit, credentials that cannot be decided from a cache
/// (argon2 hashes, JWT signatures, Kubernetes TokenReviews, database look-ups) are not
/// verified: the request carries [`Identity::Invalid`](batlehub_core::Identity::Invalid)
/// and an [`AuthThrottled`] extension, which protocol services answer with `429` and
/// `Retry-After`. Credentials already verified (cached) still pass, so one broken client
/// behind a shared address does not lock out its neighbours' working tokens.
///
/// The client address is the [`ClientAddr`](batlehub_core::ClientAddr) peer, or behind
/// [`trusted_proxies`](Self::trusted_proxies) the nearest untrusted `X-Forwarded-For` hop;
/// IPv6 addresses count per `/64`. Requests without a `ClientAddr` are not limited.
///
/// The default ([`AuthLayer::new`](crate::AuthLayer::new) installs it): 30 failures per
/// minute.
#[derive(Clone)]
pub struct FailedAuthLimit {
    max: u32,
    window: Duration,
    trusted: Arc<[IpNet]>,
    clock: Arc<dyn Clock>,
    windows: Arc<Mutex<HashMap<IpAddr, Window>>>,
}

impl fmt::Debug for FailedAuthLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedAuthLimit")
            .field("max", &self.max)
            .field("window", &self.window)
            .field("trusted", &self.trusted)
            .field("tracked", &self.windows.lock().len())
            .finish_non_exhaustive()
    }
}

impl Default for FailedAuthLimit {
    fn default() -> Self {
        Self::new(30, Duration::from_secs(60))
    }
}

impl FailedAuthLimit {
    /// `max` failures (at least one) per client address in each `window` (at least a second).
    #[must_use]
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window: window.max(Duration::from_secs(1)),
            trusted: Arc::from([]),
            clock: Arc::new(SystemClock),
            windows: Arc::default(),
        }
    }

    /// Peers whose `X-Forwarded-For` is believed (the same list as the base URL's).
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted = Arc::from(proxies);
        self
    }

    /// The clock windows are measured with (tests pass a [`FakeClock`](batlehub_core::FakeClock)).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key a request is counted under.
    pub(crate) fn key(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let ip = batlehub_core::client_ip(headers, extensions, &self.trusted)?;
        Some(match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
        })
    }

    fn window_secs(&self) -> i64 {
        i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX)
    }

    /// `Some` while `key` is over its limit.
    pub(crate) fn throttled(&self, key: IpAddr) -> Option<AuthThrottled> {
        let now = self.clock.now();
        let windows = self.windows.lock();
        let w = windows.get(&key)?;
        let elapsed = (now - w.start).num_seconds();
        (elapsed < self.window_secs() && w.failures >= self.max).then(|| AuthThrottled {
            retry_after: u64::try_from((self.window_secs() - elapsed).max(1)).unwrap_or(1),
            limit: u64::from(self.max),
        })
    }

    /// Counts one failed authentication for `key`.
    pub(crate) fn failed(&self, key: IpAddr) {
        let now = self.clock.now();
        let span = self.window_secs();
        let mut windows = self.windows.lock();
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&key) {
            windows.retain(|_, w| (now - w.start).num_seconds() < span);
            if windows.len() >= MAX_TRACKED {
                windows.clear();
            }
        }
        let w = windows.entry(key).or_insert(Window {
            start: now,
            failures: 0,
        });
        if (now - w.start).num_seconds() >= span {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}
