//! `wkjoin preflight`: gather facts about this host and the cluster, then judge them with a pure `evaluate`.

pub mod checks;
pub mod facts;

pub use checks::{Check, Options, Status, any_failed, evaluate};
pub use facts::Facts;

use crate::host::probe;
use crate::layout::{Layout, Os};
use crate::output::OutputFormat;
use crate::plan::Step;
use crate::settings::Settings;
use crate::start::network::CNI_CONF_FILE;
use crate::state::State;
use crate::version::KubeVersion;
use facts::{Api, CniConfig, PortFact, PortState};
use serde::Serialize;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "preflight checks the host it runs on, which runs {host}, but the settings are for {os}: run it on the {os} node (drop --os)"
    )]
    ForeignOs { os: Os, host: Os },
}

/// The kubelet version to check skew with: the one asked for, else the one wkjoin installed.
pub fn kubelet_version(s: &Settings, state: Option<&State>) -> Option<KubeVersion> {
    s.kubernetes_version.exact().or_else(|| {
        state.and_then(|st| st.binaries.as_ref()).and_then(|b| b.version.as_deref()).and_then(KubeVersion::find_in)
    })
}

/// Binds a TCP port on every address and on loopback (kube-proxy's metrics listen there only).
fn bind_test(port: u16) -> PortState {
    for ip in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST] {
        match TcpListener::bind(SocketAddr::from((ip, port))) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return PortState::InUse { holder: probe::port_holder(port) };
            }
            Err(e) => return PortState::Unknown { reason: e.to_string() },
        }
    }
    PortState::Free
}

fn read_cni_config(path: &str) -> Option<CniConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(CniConfig { path: path.into(), network_name: None, error: Some(e.to_string()) }),
    };
    Some(match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => CniConfig {
            path: path.into(),
            network_name: v["name"].as_str().map(str::to_string),
            error: v["name"].is_null().then(|| "it has no `name`".to_string()),
        },
        Err(e) => CniConfig { path: path.into(), network_name: None, error: Some(e.to_string()) },
    })
}

/// Everything except the API server, from this host.
pub fn gather_host(s: &Settings, state: Option<&State>, api: Api) -> Facts {
    let l = s.layout();
    let mut f = Facts::empty(s.os);
    f.windows = probe::windows_version();
    (f.containers_feature, f.hyperv_feature) = probe::windows_features();
    f.hyperv_guest = probe::hyperv_guest();
    f.cpus = std::thread::available_parallelism().ok().map(|n| n.get());
    f.runtime_endpoint = s.runtime_endpoint.clone().or_else(|| match s.os {
        // dockershim: the kubelet talks to Docker's own endpoint.
        Os::Windows => Some("npipe:////./pipe/docker_engine".into()),
        Os::Linux => Some("unix:///var/run/docker.sock".into()),
    });
    f.runtime = f.runtime_endpoint.as_deref().map(probe::runtime_endpoint);
    f.own_programs = ["kubelet", "kube-proxy"].iter().map(|b| l.binary(b)).collect();
    f.services_started = state.is_some_and(|st| st.steps.contains_key(&Step::Start));
    f.ports = checks::PORTS
        .iter()
        .map(|(port, service)| PortFact { port: *port, service: service.to_string(), state: bind_test(*port) })
        .collect();
    if s.os == Os::Linux {
        f.sysctls = ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"]
            .iter()
            .map(|k| (k.to_string(), probe::sysctl(k)))
            .collect();
    }
    f.cni_bin_dir = s.cni_bin_dir.clone();
    f.cni_plugins_found = checks::required_cni_plugins(s.os)
        .iter()
        .filter(|p| Path::new(&s.cni_bin_dir).join(p).is_file())
        .map(|p| p.to_string())
        .collect();
    f.disk_free = probe::disk_free(Path::new(&s.root_dir));
    f.api = api;
    f.kubelet_version = kubelet_version(s, state);
    f.cni_config = read_cni_config(&Layout::new(s.os, s.cni_conf_dir.clone()).join(&[CNI_CONF_FILE]));
    f.cni_conf_dir = s.cni_conf_dir.clone();
    f.cni_conf_files = std::fs::read_dir(&s.cni_conf_dir)
        .map(|d| d.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect::<Vec<_>>())
        .unwrap_or_default();
    f.cni_conf_files.sort();
    f.kube_network_env = std::env::var("KUBE_NETWORK").ok().filter(|v| !v.is_empty());
    f
}

/// Parses an HTTP `Date` header (IMF-fixdate, e.g. `Sun, 22 Nov 2026 03:38:31 GMT`).
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    static PARSER: k8s_openapi::jiff::fmt::rfc2822::DateTimeParser =
        k8s_openapi::jiff::fmt::rfc2822::DateTimeParser::new();
    let ts = PARSER.parse_timestamp(value.trim()).ok()?;
    let secs = u64::try_from(ts.as_second()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Asks the API server for its version, and reads its clock from the `Date` header of the answer.
pub async fn probe_api(client: &kube::Client, server: Option<String>) -> Api {
    let req = http::Request::get("/version").body(kube::client::Body::from(Vec::new())).expect("static request");
    let resp = match tokio::time::timeout(Duration::from_secs(15), client.send(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Api::Unreachable { server, reason: e.to_string() },
        Err(_) => return Api::Unreachable { server, reason: "no answer within 15s".into() },
    };
    let local_time = SystemTime::now();
    let date = resp.headers().get("date").and_then(|v| v.to_str().ok()).and_then(parse_http_date);
    if !resp.status().is_success() {
        return Api::Unreachable { server, reason: format!("GET /version answered {}", resp.status()) };
    }
    match client.apiserver_version().await {
        Ok(info) => Api::Reachable { server, version: info.git_version, date, local_time: Some(local_time) },
        Err(e) => Api::Unreachable { server, reason: e.to_string() },
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub node: String,
    pub os: Os,
    pub ok: bool,
    pub summary: Summary,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(s: &Settings, checks: Vec<Check>) -> Self {
        let count = |st: Status| checks.iter().filter(|c| c.status == st).count();
        Report {
            node: s.node_name.clone(),
            os: s.os,
            ok: !any_failed(&checks),
            summary: Summary {
                pass: count(Status::Pass),
                warn: count(Status::Warn),
                fail: count(Status::Fail),
                skip: count(Status::Skip),
            },
            checks,
        }
    }
}

/// The table: one line per check, the fix indented below each warn and fail.
pub fn render_table(r: &Report) -> String {
    let width = r.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = format!("preflight for node {} ({})\n", r.node, r.os);
    for c in &r.checks {
        out.push_str(&format!("  {:<4}  {:<width$}  {}\n", c.status.to_string().to_uppercase(), c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("        {:<width$}  fix: {fix}\n", ""));
        }
    }
    let s = &r.summary;
    out.push_str(&format!(
        "{} passed, {} warnings, {} failed, {} skipped{}\n",
        s.pass,
        s.warn,
        s.fail,
        s.skip,
        if r.ok { "" } else { ": fix the failures before joining" }
    ));
    out
}

pub fn print(r: &Report, format: OutputFormat) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => out.write_all(render_table(r).as_bytes())?,
        other => crate::output::write_data(&mut out, other, r)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sun, 22 Nov 2026 03:38:31 GMT").unwrap();
        assert_eq!(humantime::format_rfc3339_seconds(t).to_string(), "2026-11-22T03:38:31Z");
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn cni_config_name_is_read_and_damage_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("10-wkjoin.conflist");
        assert_eq!(read_cni_config(p.to_str().unwrap()), None);
        std::fs::write(&p, r#"{"name":"l2bridge","plugins":[]}"#).unwrap();
        assert_eq!(read_cni_config(p.to_str().unwrap()).unwrap().network_name.as_deref(), Some("l2bridge"));
        std::fs::write(&p, "{").unwrap();
        let c = read_cni_config(p.to_str().unwrap()).unwrap();
        assert!(c.network_name.is_none() && c.error.is_some());
    }
}
