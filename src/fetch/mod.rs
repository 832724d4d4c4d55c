//! `wkjoin fetch`: the Kubernetes node archive, verified in one streaming pass and installed atomically.
//!
//! `plan` says what would happen (pure, for `--dry-run`); `run` does it: the body streams through the
//! checksum, gunzip and tar at once into a staging directory, and only a verified archive's binaries are
//! moved into place, the replaced ones kept for `--rollback`.
//!
//! This module holds the plan and the entry points; a run is a job (job: one install; pass: its streaming
//! pass) or a rollback, and ends in a report.

pub mod cni_plugins;
pub mod download;
mod error;
mod install;
mod job;
mod pass;
pub mod progress;
mod report;
mod rollback;
pub mod source;
pub mod unpack;
mod version;

pub use error::FetchError;
pub(crate) use error::chain;
pub use job::file_sha256;
pub use report::{Outcome, Report};
pub use version::binary_version;

use crate::host::Native;
use crate::layout::Os;
use crate::plan::{Action, Plan, Step};
use crate::settings::Settings;
use crate::state::{InstalledRelease, State};
use crate::version::{KubeVersion, VersionSpec};
use download::{Downloader, RetryPolicy};
use job::{Job, Kind};
use progress::Progress;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use unpack::Wanted;

/// The binaries wkjoin installs from `kubernetes/node/bin/`.
pub const NODE_BINARIES: [&str; 3] = ["kubelet", "kube-proxy", "kubectl"];
/// Installed too when the archive has them (release archives do; some mirrors' do not).
pub const OPTIONAL_BINARIES: [&str; 1] = ["kubeadm"];

/// `{mirror}/{version}/kubernetes-node-{os}-{arch}.tar.gz`.
pub fn archive_url(mirror: &str, version: KubeVersion, os: &str, arch: &str) -> String {
    format!("{}/{version}/kubernetes-node-{os}-{arch}.tar.gz", mirror.trim_end_matches('/'))
}

/// `{mirror}/{marker}.txt`, e.g. `stable.txt`, holding a version.
pub fn marker_url(mirror: &str, marker: &str) -> String {
    format!("{}/{marker}.txt", mirror.trim_end_matches('/'))
}

/// What `wkjoin fetch` was asked for beyond the node settings.
#[derive(Debug, Clone, Default)]
pub struct FetchInput {
    /// A local archive to install instead of downloading one (needs `sha512`).
    pub archive: Option<String>,
    /// The archive's SHA-512, checked instead of the published checksum.
    pub sha512: Option<String>,
    /// Swap the installed binaries with the previous ones.
    pub rollback: bool,
}

pub fn plan(s: &Settings) -> Plan {
    plan_with(s, &FetchInput::default())
}

pub fn plan_with(s: &Settings, input: &FetchInput) -> Plan {
    let layout = s.layout();
    let suffix = s.os.exe_suffix();
    let names = |list: &[&str]| -> Vec<String> { list.iter().map(|b| format!("{b}{suffix}")).collect() };
    if input.rollback {
        let mut plan = Plan::new(Step::Fetch, "roll back to the previous node binaries");
        plan.push(Action::RollbackRelease { bin_dir: layout.bin_dir(), previous_dir: layout.previous_bin_dir() });
        return plan;
    }
    let release = |url: String, checksum_url: Option<String>| Action::FetchRelease {
        url,
        checksum_url,
        sha512: input.sha512.clone(),
        version: s.kubernetes_version.exact().map(|v| v.to_string()),
        binaries: names(&NODE_BINARIES),
        optional_binaries: names(&OPTIONAL_BINARIES),
        bin_dir: layout.bin_dir(),
        cache_dir: layout.cache_dir(),
    };
    if let Some(archive) = &input.archive {
        let mut plan = Plan::new(Step::Fetch, format!("install the node binaries from {archive}"));
        // An offline install is what the archive holds: the CNI plugins come from their own mirror, if wanted.
        plan.push(release(archive.clone(), None));
        return plan;
    }
    let mut plan = Plan::new(Step::Fetch, format!("install the Kubernetes {} node binaries", s.kubernetes_version));
    match &s.kubernetes_version {
        VersionSpec::Exact(v) => {
            let url = archive_url(&s.mirror, *v, s.os.as_str(), &s.arch);
            let checksum_url = input.sha512.is_none().then(|| format!("{url}.sha512"));
            plan.push(release(url, checksum_url));
        }
        VersionSpec::Marker(m) => {
            plan.push(Action::Deferred {
                what: format!("download and install {} for {}", names(&NODE_BINARIES).join(", "), s.os),
                needs: format!("{} names the version", marker_url(&s.mirror, m)),
            });
        }
    }
    push_cni_plugins(&mut plan, s);
    plan
}

/// Windows: the CNI plugins release pinned to the Kubernetes version (or `--cni-plugins-version`).
fn push_cni_plugins(plan: &mut Plan, s: &Settings) {
    if s.os == Os::Windows {
        plan.push(cni_plugins_action(s));
    }
}

fn cni_plugins_action(s: &Settings) -> Action {
    let binaries: Vec<String> = cni_plugins::WINDOWS.iter().map(|b| b.to_string()).collect();
    match cni_plugins::version(s) {
        Some(version) => {
            let url = cni_plugins::archive_url(&s.cni_plugins_mirror, &version, &s.arch);
            Action::FetchCniPlugins {
                checksum_url: format!("{url}.sha512"),
                url,
                version,
                binaries,
                bin_dir: s.cni_bin_dir.clone(),
                cache_dir: s.layout().cache_dir(),
            }
        }
        None => Action::Deferred {
            what: format!("download and install {} into {}", binaries.join(", "), s.cni_bin_dir),
            needs: "the Kubernetes version, which the CNI plugins release is pinned to".into(),
        },
    }
}

/// Plans and applies `wkjoin fetch` (see [`apply`]).
pub async fn run(s: &Settings, input: &FetchInput, progress: &Progress) -> Result<(Plan, Report), FetchError> {
    apply(s, &plan_with(s, input), progress).await
}

/// Applies a fetch plan as printed: a release marker (`stable`) is resolved first and the step re-planned for
/// the version it names (the re-plan is printed); then the release is downloaded, verified and installed (or
/// rolled back), and the plan that ran is recorded in the state file.
pub async fn apply(s: &Settings, plan: &Plan, progress: &Progress) -> Result<(Plan, Report), FetchError> {
    if s.os != Os::host() && !Path::new(&s.root_dir).is_absolute() {
        return Err(FetchError::ForeignRoot { os: s.os, root: s.root_dir.clone(), host: Os::host() });
    }
    let layout = s.layout();
    let state_path = PathBuf::from(layout.state_file());
    let mut state = State::load(&state_path)?.unwrap_or_default();
    let mut s = s.clone();
    let mut plan = plan.clone();
    if let (Some(Action::Deferred { .. }), VersionSpec::Marker(marker)) = (plan.actions.first(), &s.kubernetes_version)
    {
        let dl = Downloader::new(RetryPolicy::default())?;
        let v = source::resolve_marker(&dl, &s.mirror, marker).await?;
        progress.phase(format!("{marker} is {v} at {}", s.mirror));
        s.kubernetes_version = VersionSpec::Exact(v);
        plan = plan_with(&s, &FetchInput::default());
        for a in &plan.actions {
            progress.phase(format!("re-planned for {v}: {a}"));
        }
    }
    let mut report = match plan.actions.first() {
        Some(Action::FetchRelease {
            url, sha512, version, binaries, optional_binaries, bin_dir, cache_dir, ..
        }) => {
            // The mirror's own archive for the version, or an archive the user named (other error messages).
            let mirror_url = s.kubernetes_version.exact().map(|v| archive_url(&s.mirror, v, s.os.as_str(), &s.arch));
            let job = Job {
                kind: Kind::Node,
                s: &s,
                url,
                pinned: sha512.as_deref(),
                version: version.as_deref(),
                wanted: Wanted::node(binaries.clone(), optional_binaries.clone()),
                bin_dir: Path::new(bin_dir),
                previous_dir: PathBuf::from(layout.previous_bin_dir()),
                cache_dir: Path::new(cache_dir),
                local_archive: mirror_url.as_deref() != Some(url.as_str()),
            };
            job.run(&mut state, progress).await?
        }
        Some(Action::RollbackRelease { bin_dir, previous_dir }) => {
            rollback::rollback(&s, &mut state, Path::new(bin_dir), Path::new(previous_dir)).await?
        }
        other => return Err(FetchError::NotPlanned { action: other.map(|a| a.to_string()).unwrap_or_default() }),
    };
    // The node binaries are recorded as soon as they are in place, whatever happens to the plugins next.
    if plan.actions.len() > 1 {
        state.save(&state_path, &mut Native)?;
    }
    for action in plan.actions.iter().skip(1) {
        let Action::FetchCniPlugins { url, version, binaries, bin_dir, cache_dir, .. } = action else {
            return Err(FetchError::NotPlanned { action: action.to_string() });
        };
        report.cni_plugins = Some(Box::new(
            cni_plugins_job(&s, &mut state, progress, url, version, binaries, Path::new(bin_dir), cache_dir).await?,
        ));
    }
    state.record(&plan, SystemTime::now());
    if state.node_name.is_none() {
        state.node_name = Some(s.node_name.clone());
    }
    state.save(&state_path, &mut Native)?;
    Ok((plan, report))
}

/// Installs the plugins wkjoin may own; one already in `bin_dir` that it did not install is left alone.
#[allow(clippy::too_many_arguments)]
async fn cni_plugins_job(
    s: &Settings,
    state: &mut State,
    progress: &Progress,
    url: &str,
    version: &str,
    binaries: &[String],
    bin_dir: &Path,
    cache_dir: &str,
) -> Result<Report, FetchError> {
    let left_alone = cni_plugins::not_ours(binaries, bin_dir, state);
    let required: Vec<String> =
        binaries.iter().filter(|b| !left_alone.contains(&bin_dir.join(b).display().to_string())).cloned().collect();
    for path in &left_alone {
        progress.phase(format!("{path} was not installed by wkjoin: left alone"));
    }
    let mut report = if required.is_empty() {
        Report {
            outcome: Outcome::AlreadyInstalled,
            downloaded_bytes: 0,
            from_cache: false,
            verified_with: None,
            installed: state.cni_plugins.clone().unwrap_or_else(|| InstalledRelease {
                version: Some(version.to_string()),
                os: s.os.as_str().to_string(),
                arch: s.arch.clone(),
                source: url.to_string(),
                archive_sha512: String::new(),
                checksum: String::new(),
                installed_at: String::new(),
                bin_dir: bin_dir.display().to_string(),
                files: Vec::new(),
            }),
            previous: None,
            warnings: Vec::new(),
            left_alone: Vec::new(),
            cni_plugins: None,
        }
    } else {
        let job = Job {
            kind: Kind::CniPlugins,
            s,
            url,
            pinned: None,
            version: Some(version),
            wanted: Wanted { required, optional: Vec::new(), prefix: "" },
            bin_dir,
            previous_dir: PathBuf::new(),
            cache_dir: Path::new(cache_dir),
            local_archive: true,
        };
        job.run(state, progress).await?
    };
    report.left_alone = left_alone;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_layout_urls() {
        assert_eq!(
            archive_url("https://dl.k8s.io/release/", KubeVersion::new(1, 20, 2), "windows", "amd64"),
            "https://dl.k8s.io/release/v1.20.2/kubernetes-node-windows-amd64.tar.gz"
        );
        assert_eq!(marker_url("http://m", "latest-1.20"), "http://m/latest-1.20.txt");
    }
}
