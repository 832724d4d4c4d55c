//! What each cell needs before it runs: its command and the pod it runs in, or, when it needs no probe (a known
//! limitation, sample-ready, a source or target that is not running, an unknown address), its result at once.

use super::Options;
use super::matrix::{self, Addresses, Cell, NodeInfo, NodeOs, Source, Target};
use super::pods::PodState;
use super::report::{CellResult, Verdict};
use super::sample::{self, Role};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use std::collections::BTreeMap;

/// What the cells of one run share: the pods' API, the nodes, where the sample got to, and the addresses.
pub(super) struct Ctx<'a> {
    pub(super) pods: Api<Pod>,
    pub(super) nodes: &'a [NodeInfo],
    pub(super) index: BTreeMap<String, usize>,
    pub(super) states: BTreeMap<String, PodState>,
    pub(super) reasons: BTreeMap<String, String>,
    pub(super) addrs: Addresses,
    pub(super) opts: &'a Options,
}

impl Ctx<'_> {
    fn pod_name(&self, role: Role, node: &str) -> String {
        sample::name(role, self.index[node])
    }
    fn not_running(&self, role: Role, node: &str) -> Option<String> {
        let name = self.pod_name(role, node);
        match self.states.get(&name) {
            Some(PodState::Running { .. }) => None,
            _ => Some(self.reasons.get(&name).cloned().unwrap_or_else(|| "not running".into())),
        }
    }
}

/// A cell that can be probed: its command and the pod it runs in.
pub(super) struct Prepared {
    pub(super) probe: matrix::Probe,
    pub(super) pod: String,
    pub(super) container: &'static str,
    /// The source is a Linux pod: its first attempt can share one exec with the pod's other cells.
    pub(super) batch: bool,
    /// The source is this machine (`--local`): no pod, run here.
    pub(super) local: bool,
}

/// The cell's result when it needs no probe (known limitation, sample-ready, a source or target that is not
/// running, an unknown address), else what to run where.
pub(super) fn prepare(ctx: &Ctx<'_>, cell: &Cell) -> Result<Prepared, Box<CellResult>> {
    let cell_ = || cell.clone();
    if let Some(l) = &cell.limitation {
        return Err(Box::new(CellResult::new(cell_(), Verdict::KnownLimitation).with_reason(*l)));
    }
    let tn = cell.target.node().to_string();
    if let Target::Ready(_) = cell.target {
        let name = ctx.pod_name(Role::Web, &tn);
        let mut r = match ctx.states.get(&name) {
            Some(PodState::Running { after, .. }) => {
                let mut r = CellResult::new(cell_(), Verdict::Pass);
                r.latency_ms = Some(after.as_millis() as u64);
                r
            }
            _ => {
                let why = ctx.reasons.get(&name).cloned().unwrap_or_default();
                let mut r = CellResult::new(cell_(), Verdict::Fail)
                    .with_reason(format!("pod {}/{name} on {tn} is not running: {why}", ctx.addrs.namespace));
                if why.contains("NodePorts") || why.contains("OutOfhostPort") {
                    r.hint = Some(format!(
                        "hostPort {} is taken on {tn} by another pod: free it or pass --host-port",
                        ctx.opts.host_port
                    ));
                }
                r.hint = r.hint.or_else(|| os_build_hint(&why, &tn));
                r
            }
        };
        r.command = Some(format!("kubectl -n {} get pod {name} (wait until Running)", ctx.addrs.namespace));
        r.attempts = 1;
        return Err(Box::new(r));
    }
    let src = cell.source.node().unwrap_or_default().to_string();
    let role = if cell.source.on_host() { Role::HostProbe } else { Role::Probe };
    let sample_name = |n: &str| ctx.pod_name(Role::Web, n);
    let Some(probe) = matrix::probe(cell, ctx.nodes, &ctx.addrs, &sample_name) else {
        return Err(Box::new(CellResult::new(cell_(), Verdict::Error).with_reason("no probe command for this cell")));
    };
    let with_cmd = |mut r: CellResult| {
        r.command = Some(probe.display());
        r.expect = probe.expect.clone();
        r
    };
    let local = cell.source == Source::Local;
    if !local && let Some(PodState::Unsupported(why)) = ctx.states.get(&ctx.pod_name(role, &src)) {
        return Err(Box::new(with_cmd(CellResult::new(cell_(), Verdict::KnownLimitation).with_reason(why.clone()))));
    }
    if !local && let Some(why) = ctx.not_running(role, &src) {
        let pod = ctx.pod_name(role, &src);
        let mut r = CellResult::new(cell_(), Verdict::Error).with_reason(format!("probe pod {pod} on {src}: {why}"));
        if why.contains("ImagePull") || why.contains("ErrImageNeverPull") || why.contains("InvalidImageName") {
            r.hint = Some(format!(
                "the probe image is not available to {src}'s runtime and cannot be pulled: import it (containerd: \
                 `ctr -n k8s.io images import`) or pass --probe-image with an image {src} can pull"
            ));
        }
        r.hint = os_build_hint(&why, &src).or(r.hint);
        return Err(Box::new(with_cmd(r)));
    }
    if matches!(cell.target, Target::Pod(_) | Target::HostPort(_) | Target::Service(_) | Target::ServiceName(_))
        && ctx.not_running(Role::Web, &tn).is_some()
    {
        return Err(Box::new(with_cmd(
            CellResult::new(cell_(), Verdict::Skip)
                .with_reason(format!("the web pod on {tn} is not running (see sample-ready)")),
        )));
    }
    if probe.display().contains('<') {
        let why = format!("an address is unknown: {}", probe.display());
        return Err(Box::new(with_cmd(CellResult::new(cell_(), Verdict::Error).with_reason(why))));
    }
    if local {
        return Ok(Prepared { probe, pod: String::new(), container: "", batch: false, local });
    }
    let batch = ctx.nodes.iter().any(|n| n.name == src && n.os == NodeOs::Linux);
    Ok(Prepared { probe, pod: ctx.pod_name(role, &src), container: role.container(), batch, local })
}

/// A Windows image built for another Windows build than the node's: the runtime's words for it.
fn os_build_hint(why: &str, node: &str) -> Option<String> {
    let w = why.to_ascii_lowercase();
    let mismatch = ["operating system does not match", "no matching manifest for windows", "os version"];
    mismatch.iter().any(|m| w.contains(m)).then(|| {
        format!(
            "OS-build mismatch on {node}: the image was built for another Windows build than the node's (process \
             isolation needs the same build); use the tag for {node}'s build ({} in --windows-sample-image and \
             --windows-probe-image picks it) or run the pods with Hyper-V isolation",
            sample::LTSC
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_build_mismatches_get_their_hint() {
        let hcs = "CreateContainerError: hcs::CreateComputeSystem web: The container operating system does not \
                   match the host operating system. (mcr.microsoft.com/windows/servercore:ltsc2019)";
        let h = os_build_hint(hcs, "win-1").expect("a hint");
        assert!(h.contains("win-1") && h.contains("{ltsc}"), "{h}");
        let pull = "ErrImagePull: no matching manifest for windows/amd64 10.0.20348 in the manifest list entries";
        assert!(os_build_hint(pull, "win-1").is_some());
        assert_eq!(os_build_hint("ErrImagePull: not found (busybox:1.36)", "worker-1"), None);
    }
}
