//! `--local` probes: they run on the machine running wkjoin, not in a pod. ICMP goes through the system's ping
//! (run by the host layer); HTTP is spoken natively (reqwest, plain http, no proxy from the environment: these
//! are cluster-internal addresses a proxy cannot reach). Results come back in the shape of an exec's, with
//! curl's exit codes, so the rest of validate treats them like any other probe.

use super::matrix::{Kind, Probe};
use super::probe::ExecOutput;
use crate::host::{Host, Native};
use std::time::{Duration, Instant};

/// curl's exit code for "could not connect" (the equivalent command shown for the cell is a curl).
pub const CONNECT_FAILED: i32 = 7;
/// curl's exit code for "timed out".
pub const TIMED_OUT: i32 = 28;

/// The probe could not run at all (not a network verdict).
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Host(#[from] crate::host::HostError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("not a local HTTP probe (no `-m SECS ... URL`): {0}")]
    NotHttp(String),
    #[error("not a local TCP probe (no `nc -z -w SECS HOST PORT`): {0}")]
    NotTcp(String),
    #[error("the local probe's task failed: {0}")]
    Task(String),
}

/// The URL and timeout of a local HTTP probe (`curl ... -m SECS ... URL`).
pub fn http_target(probe: &Probe) -> Option<(String, u64)> {
    let url = probe.argv.last()?.clone();
    let i = probe.argv.iter().position(|a| a == "-m")?;
    let secs = probe.argv.get(i + 1)?.parse().ok()?;
    url.starts_with("http://").then_some((url, secs))
}

/// Runs one attempt of a local probe.
pub async fn run(kind: Kind, probe: &Probe) -> Result<ExecOutput, LocalError> {
    match kind {
        Kind::Http => http(probe).await,
        Kind::Tcp => tcp(probe).await,
        _ => command(probe).await,
    }
}

/// A command (ping) through the host layer, off the async threads; ping bounds its own wait (`-W 2`/`-w 2000`).
async fn command(probe: &Probe) -> Result<ExecOutput, LocalError> {
    let argv = probe.argv.clone();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        let (program, args) = argv.split_first().map(|(p, a)| (p.as_str(), a)).unwrap_or(("", &[]));
        Native.run(program, args)
    })
    .await
    .map_err(|e| LocalError::Task(e.to_string()))??;
    Ok(ExecOutput { exit: out.status, stdout: out.stdout, stderr: out.stderr, elapsed: started.elapsed() })
}

/// A TCP connect to `nc -z -w SECS HOST PORT`'s address: exit 0 once connected, 1 otherwise (as nc).
async fn tcp(probe: &Probe) -> Result<ExecOutput, LocalError> {
    let target = match probe.argv.as_slice() {
        [nc, z, w, secs, host, port] if nc == "nc" && z == "-z" && w == "-w" => {
            secs.parse::<u64>().ok().zip(format!("{host}:{port}").parse::<std::net::SocketAddr>().ok())
        }
        _ => None,
    };
    let (secs, addr) = target.ok_or_else(|| LocalError::NotTcp(probe.display()))?;
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(secs), tokio::net::TcpStream::connect(addr)).await;
    let (exit, stderr) = match res {
        Ok(Ok(_)) => (0, String::new()),
        Ok(Err(e)) => (1, format!("cannot connect to {addr}: {e}")),
        Err(_) => (1, format!("no connection to {addr} within {secs}s")),
    };
    Ok(ExecOutput { exit: Some(exit), stdout: String::new(), stderr, elapsed: started.elapsed() })
}

/// The innermost cause ("Connection refused (os error 111)"), which says more than reqwest's outer message.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// GET over a fresh connection (a new client per attempt: a Service kube-proxy just programmed needs a new
/// connection, not a pooled one). Any answer exits 0 with its body (curl without --fail); the body decides.
async fn http(probe: &Probe) -> Result<ExecOutput, LocalError> {
    let (url, secs) = http_target(probe).ok_or_else(|| LocalError::NotHttp(probe.display()))?;
    let timeout = Duration::from_secs(secs);
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("wkjoin-validate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(LocalError::Client)?;
    let started = Instant::now();
    let res = async {
        let resp = client.get(&url).send().await?;
        resp.text().await
    }
    .await;
    let elapsed = started.elapsed();
    let (exit, stdout, stderr) = match res {
        Ok(body) => (0, body, String::new()),
        Err(e) if e.is_timeout() => (TIMED_OUT, String::new(), format!("no answer from {url} within {secs}s")),
        Err(e) => (CONNECT_FAILED, String::new(), format!("cannot connect to {url}: {}", cause(&e))),
    };
    Ok(ExecOutput { exit: Some(exit), stdout, stderr, elapsed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn curl(url: &str, secs: u64) -> Probe {
        let argv = ["curl", "-sS", "-m", &secs.to_string(), "--noproxy", "*", url];
        Probe { argv: argv.iter().map(|s| s.to_string()).collect(), expect: None }
    }

    #[test]
    fn the_url_and_timeout_come_from_the_shown_command() {
        assert_eq!(http_target(&curl("http://10.244.1.5/", 5)), Some(("http://10.244.1.5/".into(), 5)));
        assert_eq!(http_target(&curl("http://10.96.0.1/", 5).with_timeout(2)), Some(("http://10.96.0.1/".into(), 2)));
        let ping = Probe { argv: vec!["ping".into(), "-c".into(), "1".into(), "10.0.0.1".into()], expect: None };
        assert_eq!(http_target(&ping), None);
    }

    /// A real server on loopback: the body comes back with exit 0; a closed port is "could not connect" with the
    /// OS's reason.
    #[tokio::test]
    async fn http_gets_the_body_directly_and_names_a_refused_connection() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            let body = "hostname: web-1\n";
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            s.write_all(resp.as_bytes()).unwrap();
        });
        let out = run(Kind::Http, &curl(&format!("http://{addr}/"), 5)).await.unwrap();
        server.join().unwrap();
        assert_eq!((out.exit, out.stdout.as_str(), out.stderr.as_str()), (Some(0), "hostname: web-1\n", ""));
        // the port is closed now
        let out = run(Kind::Http, &curl(&format!("http://{addr}/"), 5)).await.unwrap();
        assert_eq!(out.exit, Some(CONNECT_FAILED), "{out:?}");
        assert!(out.stderr.contains(&format!("cannot connect to http://{addr}/")), "{}", out.stderr);
        assert!(out.stderr.to_lowercase().contains("refused"), "{}", out.stderr);
    }

    #[tokio::test]
    async fn tcp_pings_connect_natively() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let nc = |port: &str| Probe {
            argv: ["nc", "-z", "-w", "2", "127.0.0.1", port].map(String::from).to_vec(),
            expect: None,
        };
        assert_eq!(run(Kind::Tcp, &nc(&port)).await.unwrap().exit, Some(0));
        drop(listener);
        let refused = run(Kind::Tcp, &nc(&port)).await.unwrap();
        assert_eq!(refused.exit, Some(1));
        assert!(refused.stderr.contains("cannot connect"), "{}", refused.stderr);
        assert!(run(Kind::Tcp, &nc("not-a-port")).await.is_err());
    }

    #[tokio::test]
    async fn commands_run_through_the_host_layer() {
        let probe = |argv: &[&str]| Probe { argv: argv.iter().map(|s| s.to_string()).collect(), expect: None };
        let missing = run(Kind::Icmp, &probe(&["wkjoin-no-such-program", "x"])).await.unwrap_err();
        assert!(missing.to_string().contains("wkjoin-no-such-program"), "{missing}");
        if crate::layout::Os::host() == crate::layout::Os::Windows {
            return;
        }
        let out = run(Kind::Icmp, &probe(&["sh", "-c", "echo TTL=64; exit 3"])).await.unwrap();
        assert_eq!((out.exit, out.stdout.as_str()), (Some(3), "TTL=64\n"));
    }
}
