//! Deadlines of registry traffic: every request has a connect deadline, a read (idle) deadline
//! and an overall one, so a registry that accepts and never answers, or trickles a byte now and
//! then, ends in an error naming the registry and the time waited instead of a hang.
//!
//! * connect: reaching the registry (TCP and TLS), reqwest's `connect_timeout`;
//! * read: the longest time without progress — no answer after the request, no byte of the
//!   body, no byte of an upload taken. It resets on every byte, so a slow but live registry
//!   passes; it is what catches a stalled one;
//! * overall: one request from start to its last byte, `IG_REGISTRY_TIMEOUT` plus one second per
//!   [`MIN_RATE`] bytes expected, so a big blob over a slow link still has the time it needs.
//!
//! reqwest's own `read_timeout` is not used for the read deadline: it counts from the start of
//! the request until the response head, so it would cut off the upload of a big blob; and it
//! cannot say which deadline passed. Our watchdog sees every chunk going either way, and (through
//! [`ConnectWatch`], a layer on reqwest's connector) when a connection is being made: that time
//! belongs to the connect deadline, not to the read one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

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

    /// Runs one request (`fut`, which calls [`Activity::touch`] on every sign of progress)
    /// under the read and overall deadlines.
    pub async fn guard<T>(
        &self,
        activity: &Activity,
        expected_bytes: u64,
        fut: impl Future<Output = Result<T, DistError>>,
        missed: impl FnOnce(Missed) -> DistError,
    ) -> Result<T, DistError> {
        let overall = self.overall_for(expected_bytes);
        tokio::select! {
            r = fut => r,
            _ = activity.stalled(self.read) => Err(missed(Missed::Read(self.read))),
            _ = tokio::time::sleep(overall) => Err(missed(Missed::Overall(overall))),
        }
    }
}

/// Connections being made by one client, and when the last one was made.
#[derive(Debug, Default)]
pub struct Connections {
    connecting: AtomicUsize,
    last_made: Mutex<Option<Instant>>,
}

impl Connections {
    fn last_made(&self) -> Option<Instant> {
        *self.last_made.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A layer on reqwest's connector (`ClientBuilder::connector_layer`) that tells
/// [`Connections`] when a connection (TCP, then TLS) is being made and when it is done.
#[derive(Clone, Debug, Default)]
pub struct ConnectWatch(pub Arc<Connections>);

impl<S> tower::Layer<S> for ConnectWatch {
    type Service = Watched<S>;
    fn layer(&self, inner: S) -> Watched<S> {
        Watched {
            inner,
            conns: self.0.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Watched<S> {
    inner: S,
    conns: Arc<Connections>,
}

/// Counts a connection in progress until dropped.
struct Connecting(Arc<Connections>);

impl Drop for Connecting {
    fn drop(&mut self) {
        *self.0.last_made.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.0.connecting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, R> tower::Service<R> for Watched<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.conns.connecting.fetch_add(1, Ordering::Relaxed);
        let guard = Connecting(self.conns.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(guard);
            r
        })
    }
}

/// When a request last made progress.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last progress; `u64::MAX` before the first.
    last_ms: AtomicU64,
    conns: Arc<Connections>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new(Arc::default())
    }
}

impl Activity {
    /// A request starting now on a client whose connections `conns` watches.
    pub fn new(conns: Arc<Connections>) -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            conns,
        }
    }

    /// Something moved: bytes arrived or were taken.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis().min(u64::MAX as u128 - 1) as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `idle`, not counting time spent connecting (that is
    /// the connect deadline's).
    async fn stalled(&self, idle: Duration) {
        loop {
            if self.conns.connecting.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(idle.min(Duration::from_millis(100))).await;
                continue;
            }
            let mut last = match self.last_ms.load(Ordering::Relaxed) {
                u64::MAX => self.start,
                ms => self.start + Duration::from_millis(ms),
            };
            if let Some(made) = self.conns.last_made() {
                last = last.max(made);
            }
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
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

    fn timeout(m: Missed) -> DistError {
        DistError::Timeout {
            registry: "r".into(),
            what: "w".into(),
            missed: m,
        }
    }

    #[tokio::test]
    async fn progress_keeps_a_request_alive_and_silence_ends_it() {
        let ms = Duration::from_millis;
        let d = Deadlines {
            connect: ms(100),
            read: ms(300),
            overall: ms(60_000),
        };
        let act = Activity::default();
        let trickle = async {
            for _ in 0..6 {
                tokio::time::sleep(ms(100)).await;
                act.touch();
            }
            tokio::time::sleep(ms(5_000)).await;
            Ok(())
        };
        let start = Instant::now();
        let r = d.guard(&act, 0, trickle, timeout).await;
        assert!(matches!(
            r,
            Err(DistError::Timeout {
                missed: Missed::Read(_),
                ..
            })
        ));
        assert!(start.elapsed() >= ms(900) && start.elapsed() < ms(3_000));
        let act = Activity::default();
        let busy = async {
            loop {
                tokio::time::sleep(ms(50)).await;
                act.touch();
            }
        };
        let quick = Deadlines {
            overall: ms(500),
            ..d
        };
        let r: Result<(), _> = quick.guard(&act, 0, busy, timeout).await;
        assert!(matches!(
            r,
            Err(DistError::Timeout {
                missed: Missed::Overall(_),
                ..
            })
        ));
    }
}
