//! The objects a run creates, all in one labelled namespace: per node a sample web pod with a hostPort and a
//! Service in front of it, a probe pod on the pod network and a probe pod on the host network, each pinned
//! to its node with `nodeName` (so a NotReady node shows as a pending pod, not a scheduling mystery).

use super::matrix::{NodeInfo, NodeOs};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use serde::Deserialize;
use serde_json::json;

/// Label on every namespace wkjoin validate creates (stale ones are found by it).
pub const LABEL: &str = "wkjoin.io/validate";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "wkjoin");
pub const NAMESPACE_PREFIX: &str = "wkjoin-validate-";
/// Label selector of every pod a run creates.
pub const POD_LABEL: &str = "app.kubernetes.io/name=wkjoin-validate";

/// The three pods per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The sample web server (pod IP :80, hostPort, behind a Service).
    Web,
    /// A probe on the pod network.
    Probe,
    /// A probe in the node's network namespace.
    HostProbe,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Web, Role::Probe, Role::HostProbe];
    pub fn prefix(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::Probe => "probe",
            Role::HostProbe => "hostprobe",
        }
    }
    pub fn container(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::Probe | Role::HostProbe => "probe",
        }
    }
}

/// Pod and Service names use the node's index: node names can be longer than a DNS label allows.
pub fn name(role: Role, index: usize) -> String {
    format!("{}-{index}", role.prefix())
}

#[derive(Debug, Clone)]
pub struct Images {
    pub sample: String,
    pub probe: String,
    pub windows_sample: String,
    pub windows_probe: String,
}

/// In a Windows image name, replaced by the base image tag matching the node's build (process isolation runs
/// only images of the host's own build).
pub const LTSC: &str = "{ltsc}";

impl Images {
    /// The images for one node: `{ltsc}` in a Windows image becomes the tag of the node's build (ltsc2019 for
    /// 17763, ...). Err: why no image fits (unknown build), for the node's pods to report.
    pub fn for_node(&self, os: NodeOs, build: Option<u32>) -> Result<Images, String> {
        let mut out = self.clone();
        if os == NodeOs::Linux || !(self.windows_sample.contains(LTSC) || self.windows_probe.contains(LTSC)) {
            return Ok(out);
        }
        let Some(build) = build else {
            return Err(format!(
                "the node reports no Windows build (status.nodeInfo.kernelVersion), so no {LTSC} tag can be picked: \
                 pass --windows-sample-image and --windows-probe-image without {LTSC}"
            ));
        };
        let tag = crate::pause::base_tag_for_build(build).map_err(|e| format!("{e}; or pass images without {LTSC}"))?;
        out.windows_sample = self.windows_sample.replace(LTSC, tag);
        out.windows_probe = self.windows_probe.replace(LTSC, tag);
        Ok(out)
    }
}

/// Why a node cannot run the host probe pod, if it cannot: on Windows it is a HostProcess container, which needs
/// kubelet ≥ 1.23 (on by default from then, GA in 1.26) and containerd ≥ 1.6 (Docker cannot run one).
/// `versions`: the node's kubelet and container runtime versions ("v1.20.2", "docker://19.3.14").
pub fn host_probe_unsupported(node: &NodeInfo, versions: Option<(&str, &str)>) -> Option<String> {
    if node.os != NodeOs::Windows {
        return None;
    }
    let (kubelet, runtime) = versions.unwrap_or(("unknown", "unknown"));
    let minor = |v: &str| -> Option<(u32, u32)> {
        let mut it = v.trim_start_matches('v').split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    let kubelet_ok = minor(kubelet).is_some_and(|v| v >= (1, 23));
    let runtime_ok = runtime.strip_prefix("containerd://").and_then(minor).is_some_and(|v| v >= (1, 6));
    (!(kubelet_ok && runtime_ok)).then(|| {
        format!(
            "{}'s host probes need a HostProcess container (kubelet >= 1.23, containerd >= 1.6) and it runs kubelet \
             {kubelet} with {runtime}: run `wkjoin validate --local` on {} itself for its host's paths",
            node.name, node.name
        )
    })
}

/// The Windows build from a node's kernel version ("10.0.17763.3406" → 17763).
pub fn windows_build(kernel_version: &str) -> Option<u32> {
    kernel_version.trim().split('.').nth(2)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

pub fn namespace(ns: &str) -> Namespace {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {LABEL: "true", MANAGED_BY.0: MANAGED_BY.1}}
    }))
    .expect("valid Namespace")
}

fn labels(role: Role, index: usize) -> serde_json::Value {
    json!({"app.kubernetes.io/name": "wkjoin-validate", "wkjoin.io/role": role.prefix(), "wkjoin.io/node-index": index.to_string(), MANAGED_BY.0: MANAGED_BY.1})
}

/// The sample web servers, as shipped for people to apply by hand (the guide's Windows one and its Linux
/// equivalent): each run's web pods take their container's command from these.
const WINDOWS_MANIFEST: &str = include_str!("../../manifests/win-webserver.yaml");
const LINUX_MANIFEST: &str = include_str!("../../manifests/linux-webserver.yaml");

/// The Deployment's container in a sample manifest.
fn manifest_container(manifest: &str) -> serde_json::Value {
    serde_yaml::Deserializer::from_str(manifest)
        .filter_map(|d| serde_json::Value::deserialize(d).ok())
        .find(|d| d["kind"] == "Deployment")
        .map(|d| d["spec"]["template"]["spec"]["containers"][0].clone())
        .expect("the embedded sample manifest has a Deployment (tested)")
}

/// The web server's command on this OS (Windows: the guide's PowerShell HttpListener; Linux: busybox httpd
/// with a CGI that names the pod and the caller, so any busybox image serves).
fn web_command(windows: bool) -> serde_json::Value {
    manifest_container(if windows { WINDOWS_MANIFEST } else { LINUX_MANIFEST })["command"].clone()
}

/// ... and keeps the probe pods running until they are deleted.
const LINUX_IDLE: &str = r#"trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done"#;

pub fn pod(role: Role, index: usize, node: &NodeInfo, images: &Images, host_port: u16) -> Pod {
    let windows = node.os == NodeOs::Windows;
    let image = match (role, windows) {
        (Role::Web, false) => &images.sample,
        (Role::Web, true) => &images.windows_sample,
        (_, false) => &images.probe,
        (_, true) => &images.windows_probe,
    };
    let mut container = json!({
        "name": role.container(),
        "image": image,
        "imagePullPolicy": "IfNotPresent",
    });
    match (role, windows) {
        (Role::Web, false) => {
            // No readiness probe: the kubelet would probe host → pod, which is one of the cells.
            container["ports"] = json!([{"containerPort": 80, "hostPort": host_port, "name": "http"}]);
            container["command"] = web_command(false);
        }
        (Role::Web, true) => {
            container["ports"] = json!([{"containerPort": 80, "hostPort": host_port, "name": "http"}]);
            container["command"] = web_command(true);
        }
        (_, false) => container["command"] = json!(["sh", "-c", LINUX_IDLE]),
        (_, true) => container["command"] = json!(["powershell.exe", "-NoProfile", "-Command", "Start-Sleep 86400"]),
    }
    let mut spec = json!({
        "nodeName": node.name,
        "terminationGracePeriodSeconds": 1,
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "tolerations": [{"operator": "Exists"}],
        "containers": [container],
    });
    if role == Role::HostProbe {
        spec["hostNetwork"] = json!(true);
        if windows {
            spec["securityContext"] =
                json!({"windowsOptions": {"hostProcess": true, "runAsUserName": "NT AUTHORITY\\SYSTEM"}});
        }
    }
    // A pod per node gives each pod its own hostname: the sample's HTTP answer names it.
    let name = name(role, index);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels(role, index)},
        "spec": spec,
    }))
    .expect("valid Pod")
}

/// The Service in front of one node's sample pod (one per node, so every cell names one path).
pub fn service(index: usize) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name(Role::Web, index), "labels": {MANAGED_BY.0: MANAGED_BY.1}},
        "spec": {
            "selector": {"wkjoin.io/role": "web", "wkjoin.io/node-index": index.to_string()},
            "ports": [{"name": "http", "port": 80, "targetPort": 80}],
        }
    }))
    .expect("valid Service")
}

#[cfg(test)]
mod tests {
    use super::super::matrix::tests::nodes;
    use super::*;

    fn images() -> Images {
        Images {
            sample: "wkjoin.local/webserver:1.0".into(),
            probe: "wkjoin.local/probe:1.0".into(),
            windows_sample: "win-web".into(),
            windows_probe: "win-probe".into(),
        }
    }

    #[test]
    fn pods_are_pinned_labelled_and_use_the_flags_images() {
        let ns = nodes(2);
        let web = serde_json::to_value(pod(Role::Web, 1, &ns[1], &images(), 4444)).unwrap();
        assert_eq!(web["metadata"]["name"], "web-1");
        assert_eq!(web["spec"]["nodeName"], "worker-1");
        assert_eq!(web["spec"]["containers"][0]["image"], "wkjoin.local/webserver:1.0");
        assert_eq!(web["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(web["spec"]["containers"][0]["ports"][0]["hostPort"], 4444);
        let host = serde_json::to_value(pod(Role::HostProbe, 0, &ns[0], &images(), 4444)).unwrap();
        assert_eq!(host["spec"]["hostNetwork"], true);
        assert_eq!(host["spec"]["containers"][0]["image"], "wkjoin.local/probe:1.0");
        let mut win = ns[1].clone();
        win.os = NodeOs::Windows;
        let w = serde_json::to_value(pod(Role::HostProbe, 1, &win, &images(), 4444)).unwrap();
        assert_eq!(w["spec"]["securityContext"]["windowsOptions"]["hostProcess"], true);
        assert_eq!(w["spec"]["containers"][0]["image"], "win-probe");
    }

    /// The shipped manifests are the guide's sample (2 replicas, :80, hostPort 4444, per-OS nodeSelector, a
    /// Service on :80), and the web pods run exactly their command.
    #[test]
    fn web_pods_run_the_shipped_sample_manifests() {
        for (manifest, os, windows) in [(WINDOWS_MANIFEST, "windows", true), (LINUX_MANIFEST, "linux", false)] {
            let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(manifest)
                .map(|d| serde_json::Value::deserialize(d).unwrap())
                .collect();
            let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
            let svc = docs.iter().find(|d| d["kind"] == "Service").unwrap();
            assert_eq!(deploy["spec"]["replicas"], 2);
            assert_eq!(deploy["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"], os);
            let c = manifest_container(manifest);
            assert_eq!(c["ports"][0], json!({"containerPort": 80, "hostPort": 4444}));
            assert_eq!(svc["spec"]["ports"][0]["port"], 80);
            assert_eq!(svc["spec"]["selector"], deploy["spec"]["template"]["metadata"]["labels"]);
            let mut node = nodes(1)[0].clone();
            node.os = if windows { NodeOs::Windows } else { NodeOs::Linux };
            let web = serde_json::to_value(pod(Role::Web, 0, &node, &images(), 4444)).unwrap();
            assert_eq!(web["spec"]["containers"][0]["command"], c["command"]);
            let script = c["command"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
            assert!(script.contains(if windows { "HttpListener" } else { "httpd -f -p 80" }), "{script}");
        }
    }

    #[test]
    fn windows_host_probes_need_hostprocess_support() {
        let mut win = nodes(2)[1].clone();
        win.os = NodeOs::Windows;
        assert_eq!(host_probe_unsupported(&win, Some(("v1.26.3", "containerd://1.7.2"))), None);
        assert_eq!(host_probe_unsupported(&win, Some(("v1.23.0", "containerd://1.6.0"))), None);
        let old = host_probe_unsupported(&win, Some(("v1.20.2", "docker://19.3.14"))).unwrap();
        assert!(old.contains("v1.20.2") && old.contains("docker://19.3.14") && old.contains("--local"), "{old}");
        assert!(host_probe_unsupported(&win, Some(("v1.27.1", "docker://20.10.9"))).is_some(), "Docker cannot");
        assert!(host_probe_unsupported(&win, Some(("v1.27.1", "containerd://1.5.9"))).is_some());
        assert!(host_probe_unsupported(&win, None).is_some(), "unknown versions: not attempted");
        assert_eq!(host_probe_unsupported(&nodes(1)[0], Some(("v1.20.2", "docker://19.3.14"))), None, "Linux");
    }

    #[test]
    fn windows_images_follow_the_node_build() {
        assert_eq!(windows_build("10.0.17763.3406"), Some(17763));
        assert_eq!(windows_build("10.0.20348.1970-Microsoft"), Some(20348));
        assert_eq!(windows_build("6.1.0-13-amd64"), Some(0));
        assert_eq!(windows_build("garbage"), None);
        let img = Images {
            sample: "busybox:1.36".into(),
            probe: "busybox:1.36".into(),
            windows_sample: "mcr.microsoft.com/windows/servercore:{ltsc}".into(),
            windows_probe: "registry.local/probe:{ltsc}-1".into(),
        };
        let w22 = img.for_node(NodeOs::Windows, Some(20348)).unwrap();
        assert_eq!(w22.windows_sample, "mcr.microsoft.com/windows/servercore:ltsc2022");
        assert_eq!(w22.windows_probe, "registry.local/probe:ltsc2022-1");
        assert_eq!(
            img.for_node(NodeOs::Windows, Some(17763)).unwrap().windows_sample,
            "mcr.microsoft.com/windows/servercore:ltsc2019"
        );
        // Linux nodes never need a build; a fixed Windows image is used as given
        assert_eq!(img.for_node(NodeOs::Linux, None).unwrap().windows_sample, img.windows_sample);
        assert_eq!(images().for_node(NodeOs::Windows, None).unwrap().windows_sample, "win-web");
        let unknown = img.for_node(NodeOs::Windows, Some(19041)).unwrap_err();
        assert!(unknown.contains("19041") && unknown.contains("17763") && unknown.contains("{ltsc}"), "{unknown}");
        assert!(img.for_node(NodeOs::Windows, None).unwrap_err().contains("kernelVersion"));
    }

    #[test]
    fn services_select_their_node_web_pod() {
        let svc = serde_json::to_value(service(1)).unwrap();
        assert_eq!(svc["spec"]["selector"]["wkjoin.io/node-index"], "1");
        assert_eq!(serde_json::to_value(namespace("n")).unwrap()["metadata"]["labels"][LABEL], "true");
    }
}
