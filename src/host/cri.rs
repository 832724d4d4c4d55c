//! The container runtime's own answers, over the CRI: gRPC on the runtime's unix socket (Linux) or named pipe
//! (Windows). Only the wire protocol lives here; what the answers mean is `crate::runtime`'s business.
//!
//! The handful of CRI messages wkjoin needs are written out by hand as `prost` structs (field numbers from
//! `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`; `v1alpha2` uses the same numbers). Calls go to the
//! `runtime.v1` services first and to `runtime.v1alpha2` when the runtime answers Unimplemented (containerd
//! before 1.5 / the kubelet 1.20 era).

use std::collections::BTreeMap;
use std::time::Duration;

/// `VersionResponse`: who is serving the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriVersion {
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
}

/// What the runtime answered: its version and the verbose `info` map of Status (key -> JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct CriStatus {
    pub version: CriVersion,
    pub info: BTreeMap<String, String>,
    /// (type, status, message), e.g. ("NetworkReady", false, "Network plugin returns error: cni plugin not initialized").
    pub conditions: Vec<(String, bool, String)>,
}

/// Why the runtime could not be asked; each names the endpoint, what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("`{endpoint}` is not a container runtime endpoint wkjoin can reach here ({})", endpoint_hint())]
    Endpoint { endpoint: String },
    #[error("cannot connect to the container runtime at {endpoint}: {message} ({})", connect_hint(message))]
    Connect { endpoint: String, message: String },
    #[error("the container runtime at {endpoint} failed {method}: {message} ({})", call_hint(message))]
    Call { endpoint: String, method: String, message: String },
    #[error(
        "the container runtime at {endpoint} did not answer within {secs} s (is it starting or hung? check its log or restart it)"
    )]
    Timeout { endpoint: String, secs: u64 },
}

impl CriError {
    /// The endpoint the failed call was made to.
    pub fn endpoint(&self) -> &str {
        match self {
            CriError::Endpoint { endpoint }
            | CriError::Connect { endpoint, .. }
            | CriError::Call { endpoint, .. }
            | CriError::Timeout { endpoint, .. } => endpoint,
        }
    }
}

fn endpoint_hint() -> &'static str {
    if cfg!(windows) {
        "give --runtime-endpoint as npipe:////./pipe/<name>, e.g. npipe:////./pipe/containerd-containerd"
    } else {
        "give --runtime-endpoint as unix:///<path>, e.g. unix:///run/containerd/containerd.sock"
    }
}

fn connect_hint(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.contains("permission denied") || lower.contains("access is denied") {
        "run wkjoin as root (Administrator on Windows): the runtime's endpoint is not open to this user"
    } else {
        "is containerd running? give --runtime-endpoint if it listens elsewhere"
    }
}

fn call_hint(message: &str) -> &'static str {
    if message.starts_with("Unimplemented") {
        "the runtime does not serve the CRI: if it is containerd, its CRI plugin is disabled (Docker's containerd \
         ships `disabled_plugins = [\"cri\"]`); remove \"cri\" from disabled_plugins in its config.toml and restart it"
    } else {
        "check the runtime's log"
    }
}

/// Where an endpoint URL points, whatever OS this is (so parsing is testable everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// A unix socket path.
    Unix(String),
    /// A Windows named pipe, as `\\.\pipe\name`.
    Pipe(String),
}

/// `unix:///run/x.sock` (or a bare absolute path) and `npipe:////./pipe/name` (also `npipe://./pipe/name`),
/// the forms the kubelet and crictl accept.
fn parse_endpoint(endpoint: &str) -> Option<Address> {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        return path.starts_with('/').then(|| Address::Unix(path.to_string()));
    }
    if endpoint.starts_with('/') {
        return Some(Address::Unix(endpoint.to_string()));
    }
    let rest = endpoint.strip_prefix("npipe:").or_else(|| endpoint.strip_prefix(r"\\.\pipe\").map(|_| endpoint))?;
    let rest = rest.replace('/', "\\");
    let name = rest.trim_start_matches('\\').strip_prefix(r".\pipe\")?;
    (!name.is_empty() && !name.contains('\\')).then(|| Address::Pipe(format!(r"\\.\pipe\{name}")))
}

// The CRI messages wkjoin sends and reads (a subset of the fields; unknown fields are skipped by prost).
mod wire {
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionRequest {
        #[prost(string, tag = "1")]
        pub version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub runtime_name: String,
        #[prost(string, tag = "3")]
        pub runtime_version: String,
        #[prost(string, tag = "4")]
        pub runtime_api_version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {
        #[prost(bool, tag = "1")]
        pub verbose: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        #[prost(message, optional, tag = "1")]
        pub status: Option<RuntimeStatus>,
        #[prost(btree_map = "string, string", tag = "2")]
        pub info: BTreeMap<String, String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RuntimeStatus {
        #[prost(message, repeated, tag = "1")]
        pub conditions: Vec<RuntimeCondition>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RuntimeCondition {
        #[prost(string, tag = "1")]
        pub r#type: String,
        #[prost(bool, tag = "2")]
        pub status: bool,
        #[prost(string, tag = "3")]
        pub reason: String,
        #[prost(string, tag = "4")]
        pub message: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSpec {
        #[prost(string, tag = "1")]
        pub image: String,
        #[prost(btree_map = "string, string", tag = "2")]
        pub annotations: BTreeMap<String, String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageStatusRequest {
        #[prost(message, optional, tag = "1")]
        pub image: Option<ImageSpec>,
        #[prost(bool, tag = "2")]
        pub verbose: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageStatusResponse {
        #[prost(message, optional, tag = "1")]
        pub image: Option<Image>,
        #[prost(btree_map = "string, string", tag = "2")]
        pub info: BTreeMap<String, String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, repeated, tag = "2")]
        pub repo_tags: Vec<String>,
        #[prost(string, repeated, tag = "3")]
        pub repo_digests: Vec<String>,
        #[prost(uint64, tag = "4")]
        pub size: u64,
    }
}

/// The CRI API packages, newest first.
const APIS: [&str; 2] = ["runtime.v1", "runtime.v1alpha2"];

/// A connection to one runtime endpoint, remembering which CRI API package it answered.
struct Client {
    endpoint: String,
    channel: tonic::transport::Channel,
    apis: Vec<&'static str>,
}

impl Client {
    async fn connect(endpoint: &str, apis: &[&'static str]) -> Result<Client, CriError> {
        let address = parse_endpoint(endpoint).ok_or_else(|| CriError::Endpoint { endpoint: endpoint.to_string() })?;
        let channel = connect_channel(endpoint, address).await?;
        Ok(Client { endpoint: endpoint.to_string(), channel, apis: apis.to_vec() })
    }

    /// One unary call of `service`/`method`, trying each API package while the runtime answers Unimplemented;
    /// the package that answered is kept for the next calls.
    async fn call<Req, Resp>(&mut self, service: &str, method: &str, request: Req) -> Result<Resp, CriError>
    where
        Req: prost::Message + Clone + Send + 'static,
        Resp: prost::Message + Default + Send + 'static,
    {
        let mut last = None;
        for (i, api) in self.apis.iter().enumerate() {
            let path = format!("/{api}.{service}/{method}");
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            grpc.ready()
                .await
                .map_err(|e| CriError::Connect { endpoint: self.endpoint.clone(), message: error_chain(&e) })?;
            let pq = http::uri::PathAndQuery::try_from(path.as_str()).expect("CRI method paths are valid URI paths");
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            match grpc.unary(tonic::Request::new(request.clone()), pq, codec).await {
                Ok(resp) => {
                    self.apis = self.apis[i..].to_vec();
                    return Ok(resp.into_inner());
                }
                Err(status) if status.code() == tonic::Code::Unimplemented => last = Some((path, status)),
                Err(status) => return Err(self.call_error(path, &status)),
            }
        }
        let (path, status) = last.expect("at least one CRI API package is tried");
        Err(self.call_error(path, &status))
    }

    fn call_error(&self, method: String, status: &tonic::Status) -> CriError {
        let mut message = format!("{:?}: {}", status.code(), status.message());
        if let Some(source) = std::error::Error::source(status) {
            message.push_str(&format!(": {}", error_chain(source)));
        }
        if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown {
            // A transport failure after connecting (the runtime went away) reads better as a connect error.
            if status.message().contains("transport") {
                return CriError::Connect { endpoint: self.endpoint.clone(), message };
            }
        }
        CriError::Call { endpoint: self.endpoint.clone(), method, message }
    }

    async fn version(&mut self) -> Result<CriVersion, CriError> {
        let v: wire::VersionResponse =
            self.call("RuntimeService", "Version", wire::VersionRequest { version: "v1".into() }).await?;
        Ok(CriVersion {
            runtime_name: v.runtime_name,
            runtime_version: v.runtime_version,
            runtime_api_version: v.runtime_api_version,
        })
    }
}

/// "a: b: c" from an error and its sources, skipping a source whose text its parent already shows.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

async fn connect_channel(endpoint: &str, address: Address) -> Result<tonic::transport::Channel, CriError> {
    // The authority is never looked at: the connector below decides where bytes go.
    let ep = tonic::transport::Endpoint::from_static("http://[::]:50051");
    let connected = match address {
        #[cfg(unix)]
        Address::Unix(path) => {
            ep.connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
        }
        #[cfg(windows)]
        Address::Pipe(name) => {
            ep.connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let name = name.clone();
                async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(open_pipe(&name).await?)) }
            }))
            .await
        }
        #[allow(unreachable_patterns)]
        _ => return Err(CriError::Endpoint { endpoint: endpoint.to_string() }),
    };
    // tonic says "transport error" first; the cause alone is what the user needs.
    connected.map_err(|e| CriError::Connect {
        endpoint: endpoint.to_string(),
        message: std::error::Error::source(&e).map(error_chain).unwrap_or_else(|| e.to_string()),
    })
}

/// Opens a named pipe, waiting briefly while all its instances are busy (the server creates the next one).
#[cfg(windows)]
async fn open_pipe(name: &str) -> std::io::Result<tokio::net::windows::named_pipe::NamedPipeClient> {
    use windows_sys::Win32::Foundation::ERROR_PIPE_BUSY;
    let mut tries = 0;
    loop {
        match tokio::net::windows::named_pipe::ClientOptions::new().open(name) {
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

async fn with_timeout<T>(
    endpoint: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, CriError>>,
) -> Result<T, CriError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(CriError::Timeout {
            endpoint: endpoint.to_string(),
            secs: timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0),
        }),
    }
}

/// CRI `Version`, then `Status` with `verbose: true`: the runtime's own account of itself.
pub async fn status(endpoint: &str, timeout: Duration) -> Result<CriStatus, CriError> {
    with_timeout(endpoint, timeout, async {
        let mut client = Client::connect(endpoint, &APIS).await?;
        let version = client.version().await?;
        let st: wire::StatusResponse =
            client.call("RuntimeService", "Status", wire::StatusRequest { verbose: true }).await?;
        let conditions = st
            .status
            .map(|s| s.conditions.into_iter().map(|c| (c.r#type, c.status, c.message)).collect())
            .unwrap_or_default();
        Ok(CriStatus { version, info: st.info, conditions })
    })
    .await
}

/// Whether the runtime's image store has `image` (CRI ImageService.ImageStatus); Some(image id) when present.
pub async fn image_id(endpoint: &str, image: &str, timeout: Duration) -> Result<Option<String>, CriError> {
    with_timeout(endpoint, timeout, async {
        let mut client = Client::connect(endpoint, &APIS).await?;
        let request = wire::ImageStatusRequest {
            image: Some(wire::ImageSpec { image: image.to_string(), annotations: BTreeMap::new() }),
            verbose: false,
        };
        let resp: wire::ImageStatusResponse = client.call("ImageService", "ImageStatus", request).await?;
        Ok(resp.image.map(|i| i.id).filter(|id| !id.is_empty()))
    })
    .await
}

/// CRI `Version` through the given API packages only, and the package that answered. For tests of the
/// Unimplemented fallback against a real runtime.
#[doc(hidden)]
pub async fn version_via(
    endpoint: &str,
    apis: &[&'static str],
    timeout: Duration,
) -> Result<(CriVersion, &'static str), CriError> {
    with_timeout(endpoint, timeout, async {
        let mut client = Client::connect(endpoint, apis).await?;
        let version = client.version().await?;
        Ok((version, client.apis[0]))
    })
    .await
}

/// The pid of the process serving a unix-socket endpoint (SO_PEERCRED), Linux only; None elsewhere.
#[cfg(target_os = "linux")]
pub fn server_pid(endpoint: &str) -> Option<u32> {
    let Some(Address::Unix(path)) = parse_endpoint(endpoint) else { return None };
    let stream = std::os::unix::net::UnixStream::connect(path).ok()?;
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    u32::try_from(cred.pid()).ok().filter(|pid| *pid > 0)
}

/// The pid of the process serving a unix-socket endpoint (SO_PEERCRED), Linux only; None elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn server_pid(_endpoint: &str) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_the_kubelet() {
        assert_eq!(
            parse_endpoint("unix:///run/containerd/containerd.sock"),
            Some(Address::Unix("/run/containerd/containerd.sock".into()))
        );
        assert_eq!(parse_endpoint("/run/x.sock"), Some(Address::Unix("/run/x.sock".into())));
        for pipe in [
            "npipe:////./pipe/containerd-containerd",
            "npipe://./pipe/containerd-containerd",
            r"npipe://\\.\pipe\containerd-containerd",
            r"\\.\pipe\containerd-containerd",
        ] {
            assert_eq!(parse_endpoint(pipe), Some(Address::Pipe(r"\\.\pipe\containerd-containerd".into())), "{pipe}");
        }
        for bad in ["tcp://127.0.0.1:1234", "unix://relative.sock", "npipe:////./pipe/", "containerd", ""] {
            assert_eq!(parse_endpoint(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn unsupported_scheme_names_the_endpoint_and_the_form() {
        let err = status("tcp://127.0.0.1:1", Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(&err, CriError::Endpoint { endpoint } if endpoint == "tcp://127.0.0.1:1"), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("tcp://127.0.0.1:1") && text.contains("--runtime-endpoint"), "{text}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_pipe_is_no_endpoint_on_linux() {
        let err = status("npipe:////./pipe/containerd-containerd", Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, CriError::Endpoint { .. }), "{err:?}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn no_socket_is_a_connect_error_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("unix://{}/containerd.sock", dir.path().display());
        let err = status(&endpoint, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(&err, CriError::Connect { endpoint: e, .. } if *e == endpoint), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&endpoint), "{text}");
        assert!(text.contains("No such file or directory"), "{text}");
        assert!(text.contains("is containerd running? give --runtime-endpoint"), "{text}");
        assert_eq!(server_pid(&endpoint), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_dead_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let endpoint = format!("unix://{}", path.display());
        let err = image_id(&endpoint, "wkjoin.local/pause:1.0", Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(&err, CriError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("Connection refused"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_silent_server_times_out() {
        // Accepts the connection and never speaks HTTP/2.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let endpoint = format!("unix://{}", path.display());
        let err = status(&endpoint, Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(&err, CriError::Timeout { secs: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("did not answer within 1 s"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn server_pid_is_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(server_pid(&format!("unix://{}", path.display())), Some(std::process::id()));
    }

    #[test]
    fn hints_follow_the_failure() {
        assert!(connect_hint("Permission denied (os error 13)").contains("root"));
        assert!(call_hint("Unimplemented: unknown service runtime.v1.RuntimeService").contains("disabled_plugins"));
    }
}
