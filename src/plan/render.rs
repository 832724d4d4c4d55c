//! Plans for people: one line per action (`Display`), file contents and service command lines below it, and
//! whole pipelines as `wkjoin join --dry-run` prints them. Credentials are never printed, only where they come
//! from.

use super::{Action, Contents, NextHop, Plan};
use sha2::{Digest, Sha256};
use std::fmt::{self, Write as _};

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::FetchRelease { url, checksum_url, sha512, binaries, optional_binaries, bin_dir, .. } => {
                let lower = url.to_ascii_lowercase();
                let verb =
                    if lower.starts_with("http://") || lower.starts_with("https://") { "download" } else { "read" };
                write!(f, "{verb} {url}, ")?;
                match (sha512, checksum_url) {
                    (Some(h), _) => write!(f, "verify its sha512 is {h}, ")?,
                    (None, Some(c)) => write!(f, "verify it against {c}, ")?,
                    (None, None) => write!(f, "verify it, ")?,
                }
                write!(f, "install {}", binaries.join(", "))?;
                if !optional_binaries.is_empty() {
                    let them = if optional_binaries.len() == 1 { "it" } else { "them" };
                    write!(f, " (and {} if the archive has {them})", optional_binaries.join(", "))?;
                }
                write!(f, " into {bin_dir}")
            }
            Action::FetchCniPlugins { url, checksum_url, binaries, bin_dir, .. } => write!(
                f,
                "download {url}, verify it against {checksum_url}, install {} into {bin_dir} (one already there that \
                 wkjoin did not install is left alone)",
                binaries.join(", ")
            ),
            Action::RollbackRelease { bin_dir, previous_dir } => {
                write!(f, "swap the node binaries in {bin_dir} with the previous ones kept in {previous_dir}")
            }
            Action::CreateDir { path } => write!(f, "create directory {path}"),
            Action::WriteFile { path, contents, private } => {
                let access = if *private { " (owner-only access)" } else { "" };
                match contents {
                    Contents::Text { text } => write!(f, "write {path}{access}, {} bytes", text.len()),
                    Contents::Credentials { source } => {
                        write!(f, "write {path}{access} with the credentials from {source}")
                    }
                    Contents::ClusterCa { kubeconfig } => {
                        write!(f, "write {path}{access} with the cluster CA of {kubeconfig}")
                    }
                }
            }
            Action::RemovePath { path } => write!(f, "remove {path}"),
            Action::CreateCgroup { path } => write!(f, "create cgroup {path} in every cgroup hierarchy"),
            Action::Run { program, args, purpose } => {
                write!(f, "run {} ({purpose})", shell_words(program, args))
            }
            Action::ImportImage { source, image, sha256: Some(h) } => {
                write!(f, "import image {image} from {source}, verified: sha256 {h}")
            }
            Action::ImportImage { source, image, sha256: None } => {
                write!(f, "import image {image} from {source}, verified against {source}.sha256")
            }
            Action::ConfigureRuntime { file, backup, from, to, contents, .. } => write!(
                f,
                "set the runtime's sandbox image to {to} in {file}, changing nothing else (was {}; the original is kept as {backup}; new file sha256 {})",
                from.as_deref().unwrap_or("unknown"),
                &sha256_hex(contents)[..12]
            ),
            Action::RestartRuntime { service, command, endpoint, sandbox_image, timeout_secs } => write!(
                f,
                "restart {service} ({}) and wait up to {timeout_secs}s for {endpoint} to answer with sandbox image {sandbox_image}",
                command.join(" ")
            ),
            Action::RestoreRuntimeConfig { file, backup: Some(b), .. } => {
                write!(f, "restore the runtime's config file {file} from {b} (as it was before wkjoin changed it)")
            }
            Action::RestoreRuntimeConfig { file, backup: None, .. } => {
                write!(f, "remove the runtime's config file {file} (wkjoin created it; there was none before)")
            }
            Action::VerifyImage { endpoint, image } => {
                write!(f, "check that the runtime at {endpoint} has image {image} (CRI ImageStatus)")
            }
            Action::AwaitPodCidr { node, timeout_secs } => {
                write!(f, "wait up to {timeout_secs}s for node {node} to be given a pod CIDR")
            }
            Action::CreateHnsNetwork { name, .. } => write!(f, "create HNS network {name}"),
            Action::CreateHostEndpoint { network, name, address } => write!(
                f,
                "make HNS endpoint {name} at {address} on network {network}, attached to the host (the pods' gateway)"
            ),
            Action::RemoveHostEndpoint { name } => write!(f, "remove HNS endpoint {name}"),
            Action::EnableForwarding { address } => {
                write!(f, "enable IP forwarding on the interface that holds {address}")
            }
            Action::WaitForAddress { address, timeout_secs } => write!(
                f,
                "wait up to {timeout_secs} s for {address} to be on an interface again (the HNS network moves it to a vEthernet adapter)"
            ),
            Action::ReconcileRoutes { node, cluster_cidr, service_cidr, next_hop } => write!(
                f,
                "reconcile host-gateway routes on {node}: every other node's pod CIDR in {cluster_cidr} via its {}, service CIDR {service_cidr} on the primary interface",
                match next_hop {
                    NextHop::NodeIp => "InternalIP",
                    NextHop::PodGateway => "pod gateway (.2)",
                }
            ),
            Action::AddRoute { route } => write!(f, "add route {route}"),
            Action::ReplaceRoute { from, to } => write!(f, "replace route {from} with {to}"),
            Action::DeleteRoute { route } => write!(f, "delete route {route}"),
            Action::InstallSelf { path } => write!(f, "install this wkjoin executable as {path}"),
            Action::InstallService(s) => write!(f, "install service {} ({})", s.name, s.description),
            Action::StartService { name, restart: false } => write!(f, "start service {name}"),
            Action::StartService { name, restart: true } => write!(f, "restart service {name}"),
            Action::StopService { name } => write!(f, "stop service {name}"),
            Action::RemoveService { name } => write!(f, "remove service {name}"),
            Action::AllowFirewallPort { rule, protocol, port } => {
                write!(f, "allow inbound {protocol}/{port} in the firewall (rule \"{rule}\")")
            }
            Action::AwaitNodeReady { node, timeout_secs } => {
                write!(f, "wait up to {timeout_secs}s for node {node} to be Ready")
            }
            Action::Validate { node } => write!(f, "run the connectivity matrix for node {node}"),
            Action::StopProcess { name, pid, .. } => write!(f, "stop {name} (pid {pid})"),
            Action::RemoveFirewallRule { rule } => write!(f, "remove the firewall rule \"{rule}\""),
            Action::MarkNodeNotReady { node, kubeconfig } => {
                write!(f, "mark node {node} NotReady in the cluster (credentials {kubeconfig})")
            }
            Action::DeleteNode { node, kubeconfig } => {
                write!(f, "delete node {node} from the cluster (credentials {kubeconfig})")
            }
            Action::RemoveContainers { address, namespace, ids } => {
                write!(f, "kill and remove {} container(s) in containerd namespace {namespace} at {address}", ids.len())
            }
            Action::RemoveNetns { path } => write!(f, "remove the pod network namespace {path}"),
            Action::KubeProxyCleanup { program } => write!(f, "run {program} --cleanup (kube-proxy's rules)"),
            Action::RemoveIptablesChains { program, table, chains } => write!(
                f,
                "remove {program} chains {} from table {table}, and the rules that jump to them",
                chains.join(", ")
            ),
            Action::RemoveLink { name } => write!(f, "delete network interface {name}"),
            Action::RemoveHnsNetwork { name } => write!(f, "delete HNS network {name}"),
            Action::Unmount { path } => write!(f, "unmount {path}"),
            Action::Deferred { what, needs } => write!(f, "{what} (planned once {needs})"),
        }
    }
}

/// SHA-256 of a text, as lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Quotes arguments only where a shell reader would need it, for display.
fn shell_words(program: &str, args: &[String]) -> String {
    let mut out = program.to_string();
    for a in args {
        out.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            let _ = write!(out, "\"{}\"", a.replace('"', "\\\""));
        } else {
            out.push_str(a);
        }
    }
    out
}

impl Plan {
    /// The human rendering used by `--dry-run`: one numbered line per action, file contents and service
    /// command lines indented below it.
    pub fn render(&self, index: usize, total: usize) -> String {
        let mut out = format!("[{index}/{total}] {}: {}\n", self.step, self.summary);
        for (i, action) in self.actions.iter().enumerate() {
            let _ = writeln!(out, "  {}. {action}", i + 1);
            match action {
                Action::WriteFile { contents: Contents::Text { text }, .. }
                | Action::CreateHnsNetwork { definition: text, .. } => {
                    for line in text.lines() {
                        let _ = writeln!(out, "       | {line}");
                    }
                }
                Action::InstallService(s) => {
                    let _ = writeln!(out, "       command: {}", shell_words(&s.program, &s.args));
                    for (k, v) in &s.env {
                        let _ = writeln!(out, "       env: {k}={v}");
                    }
                    if !s.depends_on.is_empty() {
                        let _ = writeln!(out, "       depends on: {}", s.depends_on.join(", "));
                    }
                    let _ = writeln!(
                        out,
                        "       log: {}; restart after {}s (backoff to {}s)",
                        s.log_file, s.restart.delay_secs, s.restart.max_delay_secs
                    );
                }
                _ => {}
            }
        }
        out
    }
}

/// Renders several plans as `wkjoin join --dry-run` prints them.
pub fn render_all(header: &str, plans: &[Plan]) -> String {
    let mut out = format!("{header}\n");
    for (i, p) in plans.iter().enumerate() {
        out.push_str(&p.render(i + 1, plans.len()));
    }
    out.push_str("dry run: nothing was changed\n");
    out
}
