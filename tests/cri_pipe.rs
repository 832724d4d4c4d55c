//! The CRI client over a Windows named pipe, the transport a Windows node's containerd listens on
//! (`npipe:////./pipe/containerd-containerd`).
//!
//! No containerd runs under wine, so the server here is a STAND-IN written in this file: a named pipe server
//! (tokio) speaking HTTP/2 (the `h2` crate) with gRPC framing done by hand, answering CRI `Version` and
//! `Status` with the values of `tests/fixtures/cri/containerd-1.6-windows.derived.json` and `ImageStatus` for
//! one known image. It proves wkjoin's client side on Windows: opening the named pipe, HTTP/2 and gRPC framing
//! over it, decoding the protobuf answers, the Unimplemented fallback, and the facts `runtime::from_status`
//! then gives. It does not prove that a real containerd on Windows answers like the derived fixture (see
//! tests/fixtures/cri/README.md: that file is derived, not recorded).
//!
//! Every wait is bounded (the client calls' own timeouts); a failure fails the test, nothing is skipped.
#![cfg(windows)]

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use wkjoin::host::cri::{self, CriError, CriStatus};
use wkjoin::runtime::{self, Fact, Source};

const TIMEOUT: Duration = Duration::from_secs(10);
const FIXTURE: &str = include_str!("fixtures/cri/containerd-1.6-windows.derived.json");
/// The image the stand-in has: the fixture's sandbox image, with an id made up for the test.
const KNOWN_IMAGE: &str = "registry.k8s.io/pause:3.6";
const KNOWN_IMAGE_ID: &str = "sha256:0000000000000000000000000000000000000000000000000000000000003600";
/// An image the stand-in does not have.
const MISSING_IMAGE: &str = "wkjoin.local/pause:1.0";

/// The CRI messages the stand-in reads and writes: field numbers from k8s.io/cri-api `pkg/apis/runtime/v1/api.proto`
/// (wkjoin's own are private to `host::cri`; writing them again here also checks those numbers independently).
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

/// The derived Windows answer, as `cri::status` should hand it over.
fn fixture() -> CriStatus {
    let v: serde_json::Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let s = |v: &serde_json::Value| v.as_str().expect("a string in the fixture").to_string();
    CriStatus {
        version: cri::CriVersion {
            runtime_name: s(&v["version"]["runtime_name"]),
            runtime_version: s(&v["version"]["runtime_version"]),
            runtime_api_version: s(&v["version"]["runtime_api_version"]),
        },
        info: v["info"].as_object().expect("info").iter().map(|(k, v)| (k.clone(), s(v))).collect(),
        conditions: v["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .map(|c| (s(&c[0]), c[1].as_bool().expect("a bool condition status"), s(&c[2])))
            .collect(),
    }
}

/// What the stand-in saw: the gRPC paths asked (in order) and anything the client got wrong.
#[derive(Debug, Default)]
struct Seen {
    paths: Vec<String>,
    faults: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn fault(seen: &Shared, text: String) {
    seen.lock().unwrap().faults.push(text);
}

/// A pipe name no other test or process uses.
fn unique_pipe(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("wkjoin-test-cri-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The CRI stand-in on its own named pipe; stops accepting when dropped.
struct StandIn {
    endpoint: String,
    seen: Shared,
    accept: tokio::task::JoinHandle<()>,
}

impl StandIn {
    /// Creates the pipe's first instance before returning, so a client can open it at once.
    fn start() -> StandIn {
        let name = unique_pipe("standin");
        let path = format!(r"\\.\pipe\{name}");
        let first = ServerOptions::new()
            .first_pipe_instance(true)
            .create(&path)
            .unwrap_or_else(|e| panic!("cannot create the named pipe {path}: {e}"));
        let seen = Shared::default();
        let accept = tokio::spawn(accept_loop(path, first, seen.clone()));
        StandIn { endpoint: format!("npipe:////./pipe/{name}"), seen, accept }
    }

    fn paths(&self) -> Vec<String> {
        self.seen.lock().unwrap().paths.clone()
    }

    fn assert_no_faults(&self) {
        let seen = self.seen.lock().unwrap();
        assert!(seen.faults.is_empty(), "the stand-in saw the client get the protocol wrong: {:#?}", seen.faults);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts clients one after another, as a pipe server must: a connected instance serves that client, and a
/// new instance is created for the next one.
async fn accept_loop(path: String, mut server: NamedPipeServer, seen: Shared) {
    loop {
        if let Err(e) = server.connect().await {
            return fault(&seen, format!("waiting for a client on {path}: {e}"));
        }
        let next = match ServerOptions::new().create(&path) {
            Ok(next) => next,
            Err(e) => return fault(&seen, format!("creating the next instance of {path}: {e}")),
        };
        let connected = std::mem::replace(&mut server, next);
        tokio::spawn(serve_connection(connected, seen.clone()));
    }
}

/// One client's HTTP/2 connection; each request (gRPC call) is answered on its own task.
async fn serve_connection(pipe: NamedPipeServer, seen: Shared) {
    let mut conn = match h2::server::handshake(pipe).await {
        Ok(conn) => conn,
        Err(e) => return fault(&seen, format!("HTTP/2 handshake: {e}")),
    };
    // Ends with None or an error when the client goes away (how it goes away is not the test's business).
    while let Some(Ok((request, respond))) = conn.accept().await {
        tokio::spawn(answer(request, respond, seen.clone()));
    }
}

/// A gRPC answer: an encoded message, or (grpc-status, grpc-message).
type Reply = Result<Vec<u8>, (u32, String)>;

async fn answer(request: http::Request<h2::RecvStream>, respond: h2::server::SendResponse<Bytes>, seen: Shared) {
    let path = request.uri().path().to_string();
    seen.lock().unwrap().paths.push(path.clone());
    let reply = match read_grpc(request).await {
        Ok(message) => reply_to(&path, &message),
        Err(e) => {
            fault(&seen, format!("{path}: {e}"));
            Err((13, format!("stand-in: {e}")))
        }
    };
    if let Err(e) = send_grpc(respond, reply) {
        fault(&seen, format!("{path}: sending the answer: {e}"));
    }
}

/// The one message of a unary gRPC request, checked the way a gRPC server reads it.
async fn read_grpc(request: http::Request<h2::RecvStream>) -> Result<Bytes, String> {
    let (head, mut body) = request.into_parts();
    if head.method != http::Method::POST {
        return Err(format!("method {}, where gRPC uses POST", head.method));
    }
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if !header("content-type").starts_with("application/grpc") {
        return Err(format!("content-type {:?}, where gRPC sends application/grpc", header("content-type")));
    }
    if header("te") != "trailers" {
        return Err(format!("te {:?}, where gRPC sends `te: trailers`", header("te")));
    }
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("reading the request body: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    // The 5-byte prefix: compressed flag (0: wkjoin asks for no compression), then the length, big-endian.
    let Some((prefix, message)) = data.split_first_chunk::<5>() else {
        return Err(format!("{} bytes of body, shorter than the 5-byte gRPC prefix", data.len()));
    };
    if prefix[0] != 0 {
        return Err(format!("compressed flag {}, where nothing was negotiated", prefix[0]));
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if message.len() != len {
        return Err(format!("the prefix announces {len} bytes, {} follow it", message.len()));
    }
    Ok(Bytes::copy_from_slice(message))
}

/// Headers `:status 200`, `content-type: application/grpc`, the message framed, then the trailers.
fn send_grpc(mut respond: h2::server::SendResponse<Bytes>, reply: Reply) -> Result<(), h2::Error> {
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .expect("a valid response head");
    let mut stream = respond.send_response(head, false)?;
    let (code, message) = match reply {
        Ok(message) => {
            let mut frame = BytesMut::with_capacity(5 + message.len());
            frame.put_u8(0);
            frame.put_u32(u32::try_from(message.len()).expect("a small message"));
            frame.put_slice(&message);
            stream.send_data(frame.freeze(), false)?;
            (0, String::new())
        }
        Err(status) => status,
    };
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from(code));
    if !message.is_empty() {
        // Plain ASCII here, so no percent-encoding is needed.
        trailers.insert("grpc-message", http::HeaderValue::from_str(&message).expect("an ASCII grpc-message"));
    }
    stream.send_trailers(trailers)
}

fn decode<M: Message + Default>(message: &[u8]) -> Result<M, (u32, String)> {
    M::decode(message).map_err(|e| (3, format!("stand-in cannot decode the request: {e}")))
}

/// What containerd would answer, from the derived Windows fixture.
fn reply_to(path: &str, message: &[u8]) -> Reply {
    let fixture = fixture();
    match path {
        "/runtime.v1.RuntimeService/Version" => {
            let _: wire::VersionRequest = decode(message)?;
            let v = fixture.version;
            Ok(wire::VersionResponse {
                version: "0.1.0".into(),
                runtime_name: v.runtime_name,
                runtime_version: v.runtime_version,
                runtime_api_version: v.runtime_api_version,
            }
            .encode_to_vec())
        }
        "/runtime.v1.RuntimeService/Status" => {
            let request: wire::StatusRequest = decode(message)?;
            let conditions = fixture
                .conditions
                .into_iter()
                // The fixture records no reasons (wkjoin does not read them).
                .map(|(r#type, status, message)| wire::RuntimeCondition {
                    r#type,
                    status,
                    reason: String::new(),
                    message,
                })
                .collect();
            // Like containerd: the info map only when asked for verbose.
            let info = if request.verbose { fixture.info } else { BTreeMap::new() };
            Ok(wire::StatusResponse { status: Some(wire::RuntimeStatus { conditions }), info }.encode_to_vec())
        }
        "/runtime.v1.ImageService/ImageStatus" => {
            let request: wire::ImageStatusRequest = decode(message)?;
            let Some(spec) = request.image else { return Err((3, "ImageStatus without an image spec".into())) };
            // Like containerd: an image it does not have is an empty answer, not an error.
            let image = (spec.image == KNOWN_IMAGE).then(|| wire::Image {
                id: KNOWN_IMAGE_ID.into(),
                repo_tags: vec![KNOWN_IMAGE.into()],
                repo_digests: vec![],
                size: 301_000,
            });
            Ok(wire::ImageStatusResponse { image }.encode_to_vec())
        }
        other => Err((12, format!("unknown method {other}"))),
    }
}

fn cri_fact(value: &str) -> Option<Fact<String>> {
    Some(Fact::new(value.to_string(), Source::Cri))
}

#[tokio::test]
async fn cri_over_a_named_pipe_gives_the_windows_node_facts() {
    let server = StandIn::start();
    let st = cri::status(&server.endpoint, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\nthe stand-in saw: {:#?}", server.seen.lock().unwrap()));
    server.assert_no_faults();
    // Every byte of the answer came through: version, conditions and the whole info map.
    assert_eq!(st, fixture());

    let info = runtime::from_status(&st).expect("facts from the Windows answer");
    assert_eq!(info.name, "containerd");
    assert_eq!(info.version, "1.6.20~ds1");
    assert_eq!(info.api_version, "v1");
    assert_eq!(info.cni_conf_dir, cri_fact(r"C:\Program Files\containerd\cni\conf"));
    assert_eq!(info.cni_bin_dir, cri_fact(r"C:\Program Files\containerd\cni\bin"));
    assert_eq!(info.sandbox_image, cri_fact("registry.k8s.io/pause:3.6"));
    assert_eq!(info.cni_max_conf_num, Some(1));
    assert_eq!(info.network_ready, Some(false));

    assert_eq!(cri::image_id(&server.endpoint, MISSING_IMAGE, TIMEOUT).await.unwrap(), None);
    assert_eq!(cri::image_id(&server.endpoint, KNOWN_IMAGE, TIMEOUT).await.unwrap(), Some(KNOWN_IMAGE_ID.into()));

    // runtime.v1 answered at once: no v1alpha2 fallback was tried.
    assert_eq!(
        server.paths(),
        [
            "/runtime.v1.RuntimeService/Version",
            "/runtime.v1.RuntimeService/Status",
            "/runtime.v1.ImageService/ImageStatus",
            "/runtime.v1.ImageService/ImageStatus",
        ]
    );
    server.assert_no_faults();
}

#[tokio::test]
async fn unimplemented_over_a_named_pipe_falls_back_then_names_the_fix() {
    let server = StandIn::start();
    // A package the stand-in does not serve answers grpc-status 12; the next package is asked.
    let (version, api) =
        cri::version_via(&server.endpoint, &["runtime.v0wkjoin", "runtime.v1"], TIMEOUT).await.unwrap();
    assert_eq!(api, "runtime.v1");
    assert_eq!(version, fixture().version);

    let err = cri::version_via(&server.endpoint, &["runtime.v0wkjoin"], TIMEOUT).await.unwrap_err();
    let CriError::Call { endpoint, method, message } = &err else { panic!("{err:?}") };
    assert_eq!(endpoint, &server.endpoint);
    assert_eq!(method, "/runtime.v0wkjoin.RuntimeService/Version");
    assert_eq!(message, "Unimplemented: unknown method /runtime.v0wkjoin.RuntimeService/Version");
    assert!(err.to_string().contains("disabled_plugins"), "{err}");

    assert_eq!(
        server.paths(),
        [
            "/runtime.v0wkjoin.RuntimeService/Version",
            "/runtime.v1.RuntimeService/Version",
            "/runtime.v0wkjoin.RuntimeService/Version",
        ]
    );
    server.assert_no_faults();
}

#[tokio::test]
async fn a_pipe_nothing_serves_is_a_connect_error_with_the_fix() {
    let endpoint = format!("npipe:////./pipe/{}", unique_pipe("nobody"));
    let err = cri::status(&endpoint, TIMEOUT).await.unwrap_err();
    assert!(matches!(&err, CriError::Connect { endpoint: e, .. } if *e == endpoint), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&endpoint), "{text}");
    // ERROR_FILE_NOT_FOUND: no instance of that pipe exists.
    assert!(text.contains("(os error 2)"), "{text}");
    assert!(text.contains("is containerd running? give --runtime-endpoint"), "{text}");

    let err = cri::image_id(&endpoint, KNOWN_IMAGE, TIMEOUT).await.unwrap_err();
    assert!(matches!(&err, CriError::Connect { endpoint: e, .. } if *e == endpoint), "{err:?}");
}
