//! Deadlines of registry traffic: every request has a connect deadline, a read (idle) deadline
//! and an overall one, so a registry that accepts and never answers, or trickles a byte now and
//! then, ends in an error naming the registry and the time waited instead of a hang.
//!
//! * connect: reaching the registry (TCP and TLS), reqwest's `connect_timeout`;
//! * read: the longest wait for the answer and then between two chunks of its body, reqwest's
//!   `read_timeout`. oci-client builds its reqwest client itself, and reqwest times the wait for
//!   the answer's head from the start of the request, connecting included: it is given connect
//!   plus read ([`super::registry`]), so a stalled registry is caught within that sum;
//! * overall: one request from start to its last byte, `IG_REGISTRY_TIMEOUT` plus one second per
//!   [`MIN_RATE`] bytes expected, so a big blob over a slow link still has the time it needs
//!   (`tokio::time::timeout` around each call).

use std::time::Duration;

use super::dist_error::DistError;

pub const ENV_CONNECT: &str = "IG_REGISTRY_CONNECT_TIMEOUT";
pub const ENV_READ: &str = "IG_REGISTRY_READ_TIMEOUT";
pub const ENV_OVERALL: &str = "IG_REGISTRY_TIMEOUT";

/// Bytes per second a transfer is granted on top of the overall deadline (64 KiB/s: a 10 MiB
/// blob gets 160 s more).
pub const MIN_RATE: u64 = 64 << 10;

/// The deadlines of one registry connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub connect: Duration,
    pub read: Duration,
    /// Overall deadline of a request that moves (almost) no bytes.
    pub overall: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            connect: Duration::from_secs(15),
            read: Duration::from_secs(30),
            overall: Duration::from_secs(300),
        }
    }
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    Connect(Duration),
    Read(Duration),
    Overall(Duration),
}

impl std::fmt::Display for Missed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missed::Connect(d) => write!(
                f,
                "could not connect within {} (connect timeout; {ENV_CONNECT} sets it)",
                secs(*d)
            ),
            Missed::Read(d) => write!(
                f,
                "no answer for {} (read timeout; {ENV_READ} sets it)",
                secs(*d)
            ),
            Missed::Overall(d) => write!(
                f,
                "not finished after {} (overall timeout of a request; {ENV_OVERALL} sets its base)",
                secs(*d)
            ),
        }
    }
}

/// `2s`, `1.5s`.
pub fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Seconds from an environment variable's value: a positive number (`30`, `2.5`).
pub fn parse_secs(name: &str, value: &str) -> Result<Duration, DistError> {
    let bad = |reason: &str| DistError::Config {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let n: f64 = value
        .trim()
        .parse()
        .map_err(|_| bad("not a number of seconds"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(bad("must be more than 0 seconds"));
    }
    Duration::try_from_secs_f64(n).map_err(|_| bad("too large"))
}

impl Deadlines {
    /// The defaults, overridden by `IG_REGISTRY_CONNECT_TIMEOUT`, `IG_REGISTRY_READ_TIMEOUT`
    /// and `IG_REGISTRY_TIMEOUT` (seconds).
    pub fn from_env() -> Result<Self, DistError> {
        let mut d = Deadlines::default();
        for (name, slot) in [
            (ENV_CONNECT, &mut d.connect),
            (ENV_READ, &mut d.read),
            (ENV_OVERALL, &mut d.overall),
        ] {
            if let Some(v) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
                *slot = parse_secs(name, &v)?;
            }
        }
        Ok(d)
    }

    /// The overall deadline of a request expected to move `bytes`.
    pub fn overall_for(&self, bytes: u64) -> Duration {
        self.overall
            .saturating_add(Duration::from_secs(bytes / MIN_RATE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds() {
        assert_eq!(parse_secs("X", "2").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_secs("X", " 0.5 ").unwrap(),
            Duration::from_millis(500)
        );
        for bad in ["0", "-1", "abc", "NaN", "inf", "1e300"] {
            let e = parse_secs("IG_REGISTRY_READ_TIMEOUT", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("IG_REGISTRY_READ_TIMEOUT="), "{e}");
        }
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
        assert_eq!(secs(Duration::from_secs(30)), "30s");
    }

    #[test]
    fn overall_grows_with_the_size() {
        let d = Deadlines::default();
        assert_eq!(d.overall_for(0), d.overall);
        assert_eq!(
            d.overall_for(10 << 20),
            d.overall + Duration::from_secs(160)
        );
    }
}
