//! A plan is what a step would do, as typed values: printed by `--dry-run`, compared by tests, hashed into
//! the state file, and executed by `apply` through a host backend. Their text for people is in [`render`].

use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

pub use crate::host::service::{Restart, ServiceSpec};

mod render;
pub use render::{render_all, sha256_hex};

/// The steps of a join, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Fetch,
    Pause,
    Config,
    Routes,
    Start,
    Validate,
    /// Undoing a join (`wkjoin reset`); never recorded in the state file.
    Reset,
}

impl Step {
    pub const ALL: [Step; 6] = [Step::Fetch, Step::Pause, Step::Config, Step::Routes, Step::Start, Step::Validate];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Fetch => "fetch",
            Step::Pause => "pause",
            Step::Config => "config",
            Step::Routes => "routes",
            Step::Start => "start",
            Step::Validate => "validate",
            Step::Reset => "reset",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a written file holds. Credentials are never printed, only where they come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Contents {
    Text {
        text: String,
    },
    Credentials {
        source: String,
    },
    /// The cluster CA of a kubeconfig (inline data or the file it names), as PEM.
    ClusterCa {
        kubeconfig: String,
    },
}

/// Where the next hop of a pod-CIDR route points (issue: routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NextHop {
    /// The other node's InternalIP (modern host-gw, as flannel does).
    NodeIp,
    /// `<podCIDR>.2` with the cluster CIDR on-link (the guide's scheme).
    PodGateway,
}

/// One typed effect on the host or the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Download (or read) the node archive, verify it against its published checksum, install the binaries.
    FetchRelease {
        /// An http(s):// or file:// URL, or a local path.
        url: String,
        /// The published checksum (`.sha512`; `.sha256` is the fallback); absent when `sha512` is pinned.
        #[serde(skip_serializing_if = "Option::is_none")]
        checksum_url: Option<String>,
        /// A SHA-512 given with `--sha512`, checked instead of the published one.
        #[serde(skip_serializing_if = "Option::is_none")]
        sha512: Option<String>,
        /// The version asked for, when known before the archive is read.
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        binaries: Vec<String>,
        /// Installed as well when the archive has them.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        optional_binaries: Vec<String>,
        bin_dir: String,
        cache_dir: String,
    },
    /// Windows: download the CNI plugins release, verify it like the node archive, and install the plugins the
    /// pod network needs into the runtime's CNI bin dir. A plugin there that wkjoin did not install is left alone.
    FetchCniPlugins {
        url: String,
        /// The published checksum (`.sha512`; `.sha256` is the fallback).
        checksum_url: String,
        version: String,
        binaries: Vec<String>,
        bin_dir: String,
        cache_dir: String,
    },
    /// Swap the installed node binaries with the ones an upgrade kept.
    RollbackRelease {
        bin_dir: String,
        previous_dir: String,
    },
    CreateDir {
        path: String,
    },
    WriteFile {
        path: String,
        contents: Contents,
        private: bool,
    },
    RemovePath {
        path: String,
    },
    /// A cgroup (e.g. a kubelet's --cgroup-root) in every cgroup hierarchy of the host.
    CreateCgroup {
        path: String,
    },
    /// A program run on the host (container runtime, firewall, ...).
    Run {
        program: String,
        args: Vec<String>,
        purpose: String,
    },
    /// Import an OCI image archive into the container runtime, after checking its SHA-256: `sha256` as given,
    /// else the `.sha256` published beside it.
    ImportImage {
        source: String,
        image: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Make the container runtime run sandboxes from the pause image: its config file is rewritten with only
    /// the sandbox image changed, after the original is kept as `backup` (once) for `wkjoin reset`.
    ConfigureRuntime {
        file: String,
        backup: String,
        /// The sandbox image the runtime uses now (absent: unknown).
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        to: String,
        /// SHA-256 of the file this plan was made from (absent: there was no file); apply refuses if it changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        original_sha256: Option<String>,
        /// The new file (never printed: runtime configs carry registry credentials); its digest is shown instead.
        #[serde(skip_serializing)]
        contents: String,
    },
    /// Restart the container runtime with `command`, then wait until its CRI endpoint answers again and reports
    /// `sandbox_image`.
    RestartRuntime {
        service: String,
        command: Vec<String>,
        endpoint: String,
        sandbox_image: String,
        timeout_secs: u64,
    },
    /// Put back the runtime's config file as it was before wkjoin changed it (`backup` absent: there was no
    /// file, so the one wkjoin wrote goes); the runtime is restarted after it.
    RestoreRuntimeConfig {
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        backup: Option<String>,
        /// What wkjoin wrote: the file is restored only while it is still exactly that.
        written_sha256: String,
    },
    /// Check over CRI that the runtime has `image` under exactly that name (the name its sandboxes use).
    VerifyImage {
        endpoint: String,
        image: String,
    },
    /// Wait until the controller manager gives the Node a `spec.podCIDR`.
    AwaitPodCidr {
        node: String,
        timeout_secs: u64,
    },
    /// An HNS network (Windows) from its JSON definition.
    CreateHnsNetwork {
        name: String,
        definition: String,
    },
    /// Make sure the HNS endpoint `name` at `address` (the pod CIDR's `.2`, every pod's gateway) is on `network`
    /// and attached to the host's compartment, as flannel's host-gw backend does.
    CreateHostEndpoint {
        network: String,
        name: String,
        address: std::net::IpAddr,
    },
    /// Delete the host endpoint wkjoin made on its network (reset).
    RemoveHostEndpoint {
        name: String,
    },
    /// Turn on IP forwarding on the interface that holds `address` (the node's vNIC, the host endpoint).
    EnableForwarding {
        address: std::net::IpAddr,
    },
    /// Wait until an interface holds `address` again: creating an L2Bridge network moves the host's address to a
    /// new `vEthernet (<adapter>)` vNIC, and the host is off the network until it is there.
    WaitForAddress {
        address: std::net::IpAddr,
        timeout_secs: u64,
    },
    /// Compute host-gateway routes from the Node list and reconcile the routes wkjoin owns.
    ReconcileRoutes {
        node: String,
        cluster_cidr: IpNet,
        service_cidr: IpNet,
        next_hop: NextHop,
    },
    AddRoute {
        route: crate::host::net::Route,
    },
    ReplaceRoute {
        from: crate::host::net::Route,
        to: crate::host::net::Route,
    },
    DeleteRoute {
        route: crate::host::net::Route,
    },
    /// Copy the running wkjoin executable to `path` (a service runs it from there).
    InstallSelf {
        path: String,
    },
    InstallService(ServiceSpec),
    /// Start a service; `restart` (the plan changed since it was last applied) restarts it when it runs. A
    /// service whose definition the plan just changed is restarted either way.
    StartService {
        name: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        restart: bool,
    },
    StopService {
        name: String,
    },
    RemoveService {
        name: String,
    },
    AllowFirewallPort {
        rule: String,
        protocol: String,
        port: u16,
    },
    AwaitNodeReady {
        node: String,
        timeout_secs: u64,
    },
    /// Run the connectivity matrix for this node.
    Validate {
        node: String,
    },
    /// Stop a process wkjoin started (the `wkjoin start` supervisor, kubelet, kube-proxy): TERM, then KILL.
    /// `program` guards against a reused pid: nothing is signalled unless the pid still runs it.
    StopProcess {
        name: String,
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        program: Option<String>,
    },
    /// Remove a Windows firewall rule by name.
    RemoveFirewallRule {
        rule: String,
    },
    /// Mark the Node NotReady in the cluster (its kubelet is gone).
    MarkNodeNotReady {
        node: String,
        kubeconfig: String,
    },
    DeleteNode {
        node: String,
        kubeconfig: String,
    },
    /// Kill and remove containers (pods) in a containerd namespace with `ctr`.
    RemoveContainers {
        address: String,
        namespace: String,
        ids: Vec<String>,
    },
    /// Unmount and remove a pinned network namespace (a pod sandbox's), which removes its veth pair.
    RemoveNetns {
        path: String,
    },
    /// `kube-proxy --cleanup`: remove the rules kube-proxy installed (a failure only warns: chains are
    /// removed below anyway).
    KubeProxyCleanup {
        program: String,
    },
    /// Remove `KUBE-*` chains from an iptables table, with every rule that jumps to them.
    RemoveIptablesChains {
        program: String,
        table: String,
        chains: Vec<String>,
    },
    /// Delete a network interface (the pod bridge).
    RemoveLink {
        name: String,
    },
    /// Delete an HNS network (Windows) by name.
    RemoveHnsNetwork {
        name: String,
    },
    Unmount {
        path: String,
    },
    /// Part of a step that can only be planned once a value exists (e.g. the pod CIDR after registration).
    Deferred {
        what: String,
        needs: String,
    },
}

/// The ordered actions of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub step: Step,
    pub summary: String,
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn new(step: Step, summary: impl Into<String>) -> Self {
        Plan { step, summary: summary.into(), actions: Vec::new() }
    }

    pub fn push(&mut self, action: Action) -> &mut Self {
        self.actions.push(action);
        self
    }

    /// A stable digest of everything the plan would do: the state file's record of a step's inputs.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).expect("plans serialize");
        hex::encode(Sha256::digest(&json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        let mut p = Plan::new(Step::Config, "install the cluster credentials");
        p.push(Action::WriteFile {
            path: "/k/config".into(),
            contents: Contents::Credentials { source: "node.kubeconfig".into() },
            private: true,
        })
        .push(Action::Run {
            program: "ctr".into(),
            args: vec!["-n".into(), "k8s.io".into(), "two words".into(), "".into()],
            purpose: "demo".into(),
        });
        p
    }

    #[test]
    fn rendering_never_prints_credentials_and_quotes_arguments() {
        let text = sample().render(1, 1);
        assert_eq!(
            text,
            "[1/1] config: install the cluster credentials\n  \
             1. write /k/config (owner-only access) with the credentials from node.kubeconfig\n  \
             2. run ctr -n k8s.io \"two words\" \"\" (demo)\n"
        );
    }

    #[test]
    fn digest_changes_with_any_input() {
        let a = sample();
        let mut b = sample();
        assert_eq!(a.digest(), b.digest());
        b.actions.pop();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn json_is_tagged_by_action() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["actions"][0]["action"], "write-file");
        assert_eq!(v["actions"][0]["contents"]["kind"], "credentials");
    }
}
