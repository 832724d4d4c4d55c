//! HTTP downloads that survive a flaky network: environment proxies, retries with exponential backoff on
//! transient failures, and resuming with `Range` after a dropped connection.

use super::FetchError;
use super::progress::Progress;
use bytes::{Buf, Bytes};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, RANGE};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in a row without progress before giving up.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Requests of one download at most, progress or not, so a trickling server cannot loop forever.
    pub max_requests: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_requests: 100,
        }
    }
}

impl RetryPolicy {
    /// 250 ms, 500 ms, 1 s, ... for the 1st, 2nd, 3rd retry.
    fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// A small file's content, or the fact that it does not exist (404).
#[derive(Debug)]
pub enum Small {
    Found(Vec<u8>),
    Missing,
}

/// Why a streamed download stopped.
#[derive(Debug)]
pub enum StreamError {
    Fetch(FetchError),
    /// The pipeline behind the stream stopped reading; its own error says why.
    Aborted,
}

impl From<FetchError> for StreamError {
    fn from(e: FetchError) -> Self {
        StreamError::Fetch(e)
    }
}

/// The most one download may be: Kubernetes node archives are a few hundred MiB; a mirror serving more is wrong.
pub const MAX_DOWNLOAD_BYTES: u64 = 2 << 30;

/// The one HTTP client of a fetch.
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    policy: RetryPolicy,
}

fn transient_status(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT
}

/// Connection refused/reset, timeouts and broken bodies are worth another try; a bad URL or TLS setup is not.
fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_body() || e.is_request() || e.is_decode()
}

fn is_html(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer, and TOTAL when known.
fn content_range(resp: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// How long a download may stay silent before the attempt ends (and the next resumes): 60 s, or
/// `WKJOIN_STALL_SECS` for a slow link (or a test's stalled mirror).
pub fn stall_timeout() -> Duration {
    let secs = std::env::var("WKJOIN_STALL_SECS").ok().and_then(|v| v.parse().ok()).filter(|s| *s > 0);
    Duration::from_secs(secs.unwrap_or(60))
}

impl Downloader {
    /// A client that honours `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (reqwest reads them unless told not to).
    pub fn new(policy: RetryPolicy) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("wkjoin/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(stall_timeout())
            .build()
            .map_err(FetchError::Client)?;
        Ok(Downloader { client, policy })
    }

    /// GETs a small file (marker, checksum), retrying transient failures; 404 is `Missing`.
    pub async fn get_small(&self, url: &str, limit: usize) -> Result<Small, FetchError> {
        let mut failures = 0;
        loop {
            let outcome = async {
                let mut resp = self.client.get(url).send().await?;
                let status = resp.status();
                if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                    return Ok(Err(None));
                }
                if !status.is_success() {
                    return Ok(Err(Some(status)));
                }
                // Read no further than the limit: a wrong URL may serve gigabytes.
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await? {
                    body.extend_from_slice(&chunk);
                    if body.len() > limit {
                        break;
                    }
                }
                Ok(Ok(body))
            }
            .await;
            let retry = match outcome {
                Ok(Ok(body)) if body.len() > limit => {
                    return Err(FetchError::BadChecksumFile {
                        url: url.to_string(),
                        reason: format!("it is more than {limit} bytes long, more than a small text file"),
                    });
                }
                Ok(Ok(body)) => return Ok(Small::Found(body)),
                Ok(Err(None)) => return Ok(Small::Missing),
                Ok(Err(Some(status))) if transient_status(status) => {
                    FetchError::Http { url: url.to_string(), status: status.as_u16(), reason: reason(status) }
                }
                Ok(Err(Some(status))) => {
                    return Err(FetchError::Http {
                        url: url.to_string(),
                        status: status.as_u16(),
                        reason: reason(status),
                    });
                }
                Err(e) if transient(&e) => {
                    FetchError::Network { url: url.to_string(), attempts: failures + 1, source: e }
                }
                Err(e) => return Err(FetchError::Network { url: url.to_string(), attempts: failures + 1, source: e }),
            };
            failures += 1;
            if failures >= self.policy.attempts {
                return Err(with_attempts(retry, failures));
            }
            tracing::warn!("{}; retrying in {:?}", super::chain(&retry), self.policy.delay(failures));
            tokio::time::sleep(self.policy.delay(failures)).await;
        }
    }

    /// Whether `url` exists (a HEAD request; anything but 404/410 counts as existing).
    pub async fn exists(&self, url: &str) -> Result<bool, FetchError> {
        let resp = self.client.head(url).send().await.map_err(|source| FetchError::Network {
            url: url.to_string(),
            attempts: 1,
            source,
        })?;
        Ok(!matches!(resp.status(), StatusCode::NOT_FOUND | StatusCode::GONE))
    }

    /// Streams `url` into `tx` chunk by chunk (at most [`MAX_DOWNLOAD_BYTES`]; a read silent for the client's
    /// read timeout ends the attempt, and the next resumes). After a dropped connection it asks for the rest with `Range`;
    /// a server that answers 200 instead of 206 resends everything, and the bytes already passed on are
    /// skipped so the one pass downstream continues unbroken. Returns the number of bytes streamed.
    pub async fn stream(&self, url: &str, tx: &mpsc::Sender<Bytes>, progress: &Progress) -> Result<u64, StreamError> {
        let mut received: u64 = 0;
        let mut total: Option<u64> = None;
        let mut failures: u32 = 0;
        let mut requests: u32 = 0;
        loop {
            requests += 1;
            let mut req = self.client.get(url);
            if received > 0 {
                req = req.header(RANGE, format!("bytes={received}-"));
            }
            let before = received;
            let failure = match req.send().await {
                Err(e) if transient(&e) => {
                    FetchError::Network { url: url.to_string(), attempts: failures + 1, source: e }
                }
                Err(e) => return Err(FetchError::Network { url: url.to_string(), attempts: 1, source: e }.into()),
                Ok(mut resp) => {
                    let status = resp.status();
                    let mut skip: u64 = 0;
                    if status == StatusCode::NOT_FOUND && received == 0 {
                        return Err(FetchError::NotFound { url: url.to_string() }.into());
                    } else if status == StatusCode::PARTIAL_CONTENT && received > 0 {
                        match content_range(&resp) {
                            Some((start, t)) if start == received => total = t.or(total),
                            other => {
                                return Err(FetchError::BadRange {
                                    url: url.to_string(),
                                    asked: received,
                                    got: other.map(|(s, _)| s),
                                }
                                .into());
                            }
                        }
                    } else if status == StatusCode::OK {
                        skip = received;
                        if received > 0 {
                            tracing::info!(
                                "{url}: the server does not resume downloads; skipping the first {received} bytes it sends again"
                            );
                        }
                        total = resp.content_length().or(total);
                        if received == 0 && is_html(&resp) {
                            return Err(FetchError::HtmlPage { url: url.to_string() }.into());
                        }
                    } else if transient_status(status) {
                        failures += 1;
                        let e =
                            FetchError::Http { url: url.to_string(), status: status.as_u16(), reason: reason(status) };
                        if failures >= self.policy.attempts || requests >= self.policy.max_requests {
                            return Err(with_attempts(e, requests).into());
                        }
                        tracing::warn!("{}; retrying in {:?}", super::chain(&e), self.policy.delay(failures));
                        tokio::time::sleep(self.policy.delay(failures)).await;
                        continue;
                    } else {
                        return Err(FetchError::Http {
                            url: url.to_string(),
                            status: status.as_u16(),
                            reason: reason(status),
                        }
                        .into());
                    }
                    if let Some(t) = total.filter(|t| *t > MAX_DOWNLOAD_BYTES) {
                        return Err(
                            FetchError::TooLarge { url: url.to_string(), bytes: t, limit: MAX_DOWNLOAD_BYTES }.into()
                        );
                    }
                    progress.set_total(total);
                    let body = loop {
                        match resp.chunk().await {
                            Ok(Some(mut chunk)) => {
                                if skip > 0 {
                                    let n = skip.min(chunk.len() as u64) as usize;
                                    chunk.advance(n);
                                    skip -= n as u64;
                                }
                                if chunk.is_empty() {
                                    continue;
                                }
                                received += chunk.len() as u64;
                                if received > MAX_DOWNLOAD_BYTES {
                                    let e = FetchError::TooLarge {
                                        url: url.to_string(),
                                        bytes: received,
                                        limit: MAX_DOWNLOAD_BYTES,
                                    };
                                    return Err(e.into());
                                }
                                progress.advance(chunk.len() as u64);
                                if tx.send(chunk).await.is_err() {
                                    return Err(StreamError::Aborted);
                                }
                            }
                            Ok(None) => break None,
                            Err(e) => break Some(e),
                        }
                    };
                    match body {
                        None if total.is_none_or(|t| received >= t) => return Ok(received),
                        None => FetchError::Truncated {
                            url: url.to_string(),
                            received,
                            expected: total,
                            attempts: failures + 1,
                        },
                        // Every byte arrived and only the connection's end was untidy.
                        Some(_) if total.is_some_and(|t| received >= t) => return Ok(received),
                        Some(e) => {
                            tracing::debug!("{url}: body broke off: {e}");
                            FetchError::Truncated {
                                url: url.to_string(),
                                received,
                                expected: total,
                                attempts: failures + 1,
                            }
                        }
                    }
                }
            };
            // Progress since the last failure means the link works: the count of failures in a row restarts.
            failures = if received > before { 1 } else { failures + 1 };
            if failures >= self.policy.attempts || requests >= self.policy.max_requests {
                return Err(with_attempts(failure, requests).into());
            }
            let delay = self.policy.delay(failures);
            tracing::warn!("{}; resuming at byte {received} in {delay:?}", super::chain(&failure));
            tokio::time::sleep(delay).await;
        }
    }
}

fn reason(s: StatusCode) -> String {
    s.canonical_reason().unwrap_or("").to_string()
}

/// Sets the attempt count an error reports to the final tally.
fn with_attempts(e: FetchError, n: u32) -> FetchError {
    match e {
        FetchError::Network { url, source, .. } => FetchError::Network { url, attempts: n, source },
        FetchError::Truncated { url, received, expected, .. } => {
            FetchError::Truncated { url, received, expected, attempts: n }
        }
        FetchError::Http { url, status, reason } => FetchError::GaveUp { url, status, reason, attempts: n },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let d: Vec<_> = (1..=7).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(d, [250, 500, 1000, 2000, 4000, 8000, 8000]);
    }
}
