//! `wkjoin pause`: the pod infrastructure image matching the host, through Docker or containerd.

use crate::apply::ApplyError;
use crate::plan::{Action, Contents, Plan, Step};
use crate::settings::{Runtime, Settings};

pub use crate::plan::sha256_hex;
pub use crate::settings::pause::{
    DEFAULT_PAUSE_IMAGE, WINDOWS_DOCKER_PAUSE, default_pause_image, pause_for_build, pause_serves_build,
};

/// Windows builds and the base image tag whose OS matches them (process isolation needs an exact match).
pub const WINDOWS_BUILDS: [(u32, &str, &str); 3] = [
    (17763, "ltsc2019", "Windows Server 2019 / 1809"),
    (20348, "ltsc2022", "Windows Server 2022"),
    (26100, "ltsc2025", "Windows Server 2025"),
];

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "Windows build {build} has no matching container base image; known builds: {known}. Use --hyperv-isolation to run an older image"
    )]
    UnknownBuild { build: u32, known: String },
    #[error("cannot download the image archive {url}: {source}")]
    Download { url: String, source: Box<crate::fetch::FetchError> },
    #[error("the image archive {url} was not found (HTTP 404)")]
    Missing { url: String },
    #[error("cannot read the image archive {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("pause image: {0}")]
    Host(#[from] crate::host::HostError),
    #[error(
        "the image archive {source_name} did not provide {image} (containerd has: {have}); give --pause-image with the name the archive carries"
    )]
    NotInArchive { source_name: String, image: String, have: String },
    #[error("cannot set the sandbox image in the runtime's config file {file}: {message}")]
    RuntimeConfig { file: String, message: String },
    #[error(
        "the runtime's config file {file} changed since wkjoin read it (another tool or person is editing it): run the command again"
    )]
    RuntimeConfigChanged { file: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(
        "the runtime at {endpoint} does not have image {image} under that name after the import (CRI ImageStatus): {message}; its sandboxes would fail with \"failed to get sandbox image\""
    )]
    NotInRuntime { endpoint: String, image: String, message: String },
}

impl PartialEq for ImageError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// The nanoserver tag for a host build.
pub fn base_tag_for_build(build: u32) -> Result<&'static str, ImageError> {
    WINDOWS_BUILDS.iter().find(|(b, _, _)| *b == build).map(|(_, tag, _)| *tag).ok_or_else(|| {
        ImageError::UnknownBuild {
            build,
            known: WINDOWS_BUILDS
                .iter()
                .map(|(b, tag, name)| format!("{b} ({tag}, {name})"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    })
}

pub fn dockerfile(tag: &str) -> String {
    format!(
        "FROM mcr.microsoft.com/windows/nanoserver:{tag}\n\
         # The infrastructure container only holds the pod's network compartment open.\n\
         CMD cmd /c ping -t localhost\n"
    )
}

/// `image_archive`: an OCI archive (file or URL) to import instead of pulling; `windows_build`: the host's
/// OS build, needed to build the Docker pause image on Windows.
pub fn plan(s: &Settings, image_archive: Option<&str>, windows_build: Option<u32>) -> Result<Plan, ImageError> {
    plan_observed(s, image_archive, windows_build, Observed::default())
}

/// The plan for what [`observe`] found: a runtime that has the image already is not asked to pull or import it.
pub fn plan_observed(
    s: &Settings,
    image_archive: Option<&str>,
    windows_build: Option<u32>,
    observed: Observed,
) -> Result<Plan, ImageError> {
    let layout = s.layout();
    let mut plan = Plan::new(Step::Pause, "make the pod infrastructure (pause) image available");
    match (s.os, s.runtime) {
        (crate::layout::Os::Windows, Runtime::Docker) => match windows_build {
            Some(build) => {
                let tag = base_tag_for_build(build)?;
                let dir = layout.image_dir();
                plan.push(Action::CreateDir { path: dir.clone() })
                    .push(Action::WriteFile {
                        path: crate::layout::Layout::new(s.os, dir.clone()).join(&["Dockerfile"]),
                        contents: Contents::Text { text: dockerfile(tag) },
                        private: false,
                    })
                    .push(Action::Run {
                        program: "docker".into(),
                        args: vec!["build".into(), "-t".into(), WINDOWS_DOCKER_PAUSE.into(), dir],
                        purpose: format!("pause image on nanoserver:{tag}, matching build {build}"),
                    });
            }
            None => {
                plan.push(Action::Deferred {
                    what: format!("build {WINDOWS_DOCKER_PAUSE} on the nanoserver tag matching the host"),
                    needs: "the host's Windows build is known".into(),
                });
            }
        },
        (_, runtime) => {
            if runtime == Runtime::Containerd {
                plan.actions.extend(align_runtime(s)?);
            }
            match image_archive {
                _ if observed.image_present == Some(true) => {}
                Some(src) => {
                    plan.push(Action::ImportImage { source: src.to_string(), image: pause_image(s) });
                }
                None => {
                    let (program, args) = match runtime {
                        Runtime::Docker => ("docker", vec!["pull".to_string(), pause_image(s)]),
                        Runtime::Containerd => ("ctr", ctr_args(s, &["images", "pull", &pause_image(s)])),
                    };
                    plan.push(Action::Run {
                        program: program.into(),
                        args,
                        purpose: "pull the multi-arch pause image".into(),
                    });
                }
            }
            if runtime == Runtime::Containerd {
                plan.push(Action::VerifyImage { endpoint: runtime_endpoint(s), image: pause_image(s) });
            }
        }
    }
    Ok(plan)
}

/// How long a restarted runtime gets to answer over CRI again.
pub const RUNTIME_RESTART_TIMEOUT_SECS: u64 = 60;

/// The runtime's service: containerd's unit or Windows service name.
pub const RUNTIME_SERVICE: &str = "containerd";

/// The command that restarts the runtime's service: systemd's, the init script's, or the SCM's.
pub fn restart_command(os: crate::layout::Os, systemd_is_init: bool) -> Vec<String> {
    let words: &[&str] = match (os, systemd_is_init) {
        // The kubelet's service depends on containerd's: -Force stops it too, and it is started again after.
        (crate::layout::Os::Windows, _) => &[
            "powershell.exe",
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            "$d = Get-Service -Name containerd -DependentServices | Where-Object Status -eq 'Running'; \
             Restart-Service -Force -Name containerd; $d | Start-Service",
        ],
        (_, true) => &["systemctl", "restart", "containerd"],
        (_, false) => &["service", "containerd", "restart"],
    };
    words.iter().map(|w| w.to_string()).collect()
}

/// One pause image agreed by everyone: when the runtime's sandbox image is not the kubelet's pause image, its
/// config file is changed (original kept) and the runtime restarted. Nothing when they already agree.
pub fn align_runtime(s: &Settings) -> Result<Vec<Action>, ImageError> {
    // A runtime that did not answer cannot be agreed with: preflight stops the join before this plan runs.
    let Some(rt) = s.runtime_facts.as_ref().filter(|r| r.answered) else { return Ok(Vec::new()) };
    let current = rt.info.sandbox_image.as_ref().map(|f| f.value.clone());
    if current.as_deref() == Some(s.pause_image.as_str()) {
        return Ok(Vec::new());
    }
    if let Some(message) = &rt.config_error {
        return Err(ImageError::RuntimeConfig { file: rt.config_file.clone(), message: message.clone() });
    }
    let contents = crate::runtime::set_sandbox_image(rt.config_text.as_deref(), &s.pause_image, rt.major_version())
        .map_err(|e| ImageError::RuntimeConfig { file: rt.config_file.clone(), message: e.to_string() })?;
    Ok(vec![
        Action::ConfigureRuntime {
            file: rt.config_file.clone(),
            backup: s.layout().runtime_config_backup(),
            from: current,
            to: s.pause_image.clone(),
            original_sha256: rt.config_text.as_deref().map(sha256_hex),
            contents,
        },
        Action::RestartRuntime {
            service: RUNTIME_SERVICE.into(),
            command: restart_command(s.os, rt.systemd_is_init),
            endpoint: rt.endpoint.clone(),
            sandbox_image: s.pause_image.clone(),
            timeout_secs: RUNTIME_RESTART_TIMEOUT_SECS,
        },
    ])
}

/// The CRI endpoint the kubelet and wkjoin talk to.
pub fn runtime_endpoint(s: &Settings) -> String {
    s.runtime_endpoint
        .clone()
        .or_else(|| crate::settings::default_runtime_endpoint(s.os, s.runtime).map(str::to_string))
        .unwrap_or_default()
}

/// The pause image the kubelet is told about (`--pause-image`, else the default for the OS and runtime).
pub fn pause_image(s: &Settings) -> String {
    s.pause_image.clone()
}

/// containerd's address for `ctr -a`: the CRI endpoint without its scheme.
pub fn containerd_address(s: &Settings) -> String {
    let ep = s
        .runtime_endpoint
        .clone()
        .or_else(|| crate::settings::default_runtime_endpoint(s.os, Runtime::Containerd).map(str::to_string))
        .unwrap_or_default();
    if let Some(path) = ep.strip_prefix("unix://") {
        path.to_string()
    } else if let Some(pipe) = ep.strip_prefix("npipe://") {
        pipe.replace('/', "\\")
    } else {
        ep
    }
}

/// `ctr` arguments against the node's containerd, in the CRI's namespace.
pub fn ctr_args(s: &Settings, rest: &[&str]) -> Vec<String> {
    let mut a = vec!["-a".to_string(), containerd_address(s), "-n".into(), "k8s.io".into()];
    a.extend(rest.iter().map(|r| r.to_string()));
    a
}

/// What `wkjoin pause` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseOutcome {
    /// The image was already in the runtime: nothing was done.
    Present,
    Imported,
    Pulled,
    Built,
}

/// What the pause step changed: the image's outcome, and whether the runtime's config was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseReport {
    pub outcome: PauseOutcome,
    /// The runtime's sandbox image was changed from this (None: the runtime already agreed).
    pub runtime_reconfigured: Option<String>,
}

impl PauseReport {
    /// Whether anything changed, and one line saying what.
    pub fn summary(&self, image: &str) -> (bool, String) {
        let (mut changed, mut line) = match self.outcome {
            PauseOutcome::Present => (false, format!("pause image {image} is in the runtime")),
            PauseOutcome::Imported => (true, format!("imported pause image {image}")),
            PauseOutcome::Pulled => (true, format!("pulled pause image {image}")),
            PauseOutcome::Built => (true, format!("built pause image {image}")),
        };
        if let Some(from) = &self.runtime_reconfigured {
            changed = true;
            line = format!("the runtime's sandbox image is now {image} (was {from}; runtime restarted); {line}");
        }
        (changed, line)
    }
}

/// What the pause step found on the host before planning: whether the runtime has the pause image already
/// (asked over CRI; None when it cannot be asked: another OS, Docker, or no answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    pub image_present: Option<bool>,
}

/// Asks the runtime (containerd on this host) whether it has the pause image, so the plan pulls or imports it
/// only when it is missing.
pub async fn observe(s: &Settings, host: &mut impl crate::host::Host) -> Observed {
    if s.os != crate::layout::Os::host() || s.runtime != Runtime::Containerd {
        return Observed::default();
    }
    Observed { image_present: host.runtime_has_image(&runtime_endpoint(s), &pause_image(s)).await.ok() }
}

/// Applies the pause plan, action by action, through `host`: the runtime's config change (recorded in the state
/// file first) and the image import are the step's own actions; every other action is the executor's.
pub async fn apply(s: &Settings, plan: &Plan, host: &mut impl crate::host::Host) -> Result<PauseReport, ImageError> {
    let host_os = if host.is_windows() { crate::layout::Os::Windows } else { crate::layout::Os::Linux };
    if s.os != host_os {
        return Err(ApplyError::ForeignOs { plan_os: s.os, host_os }.into());
    }
    let mut report = PauseReport { outcome: PauseOutcome::Present, runtime_reconfigured: None };
    let mut ctx = crate::apply::Context::default();
    for action in &plan.actions {
        match action {
            Action::ConfigureRuntime { file, backup, from, to: _, original_sha256, contents } => {
                configure_runtime(s, file, backup, original_sha256.as_deref(), contents, host)?;
                report.runtime_reconfigured = Some(from.clone().unwrap_or_else(|| "unknown".into()));
            }
            Action::ImportImage { source, image } => {
                import(s, source, image, host).await?;
                report.outcome = PauseOutcome::Imported;
            }
            other => {
                crate::apply::action(Step::Pause, other, host, &mut crate::cluster::Offline, &mut ctx).await?;
                match other {
                    Action::Run { args, .. } if args.iter().any(|a| a == "pull") => {
                        report.outcome = PauseOutcome::Pulled
                    }
                    Action::Run { .. } => report.outcome = PauseOutcome::Built,
                    _ => {}
                }
            }
        }
    }
    Ok(report)
}

/// `ctr images import`, then a check over CRI that the archive gave the image under the name sandboxes use.
async fn import(s: &Settings, source: &str, image: &str, host: &mut impl crate::host::Host) -> Result<(), ImageError> {
    let file = local_archive(s, source, host).await?;
    let import = Action::Run {
        program: "ctr".into(),
        args: ctr_args(s, &["images", "import", &file]),
        purpose: format!("import {image}"),
    };
    crate::apply::action(Step::Pause, &import, host, &mut crate::cluster::Offline, &mut Default::default()).await?;
    let endpoint = runtime_endpoint(s);
    let present = host.runtime_has_image(&endpoint, image).await.map_err(|e| ImageError::NotInRuntime {
        endpoint: endpoint.clone(),
        image: image.into(),
        message: e.to_string(),
    })?;
    if !present {
        let (_, have) = has_image(host, s, image)?;
        return Err(ImageError::NotInArchive { source_name: source.into(), image: image.into(), have });
    }
    Ok(())
}

/// Writes the runtime's new config: the original is kept once (a second join keeps the first original) and the
/// change is recorded in the state file before the file is replaced, so a failure in between is still owned.
fn configure_runtime(
    s: &Settings,
    file: &str,
    backup: &str,
    original_sha256: Option<&str>,
    contents: &str,
    host: &mut impl crate::host::Host,
) -> Result<(), ImageError> {
    use crate::state::{RuntimeConfigChange, State};
    let now = host.read_file(std::path::Path::new(file))?.map(|b| String::from_utf8_lossy(&b).into_owned());
    if now.as_deref().map(sha256_hex).as_deref() != original_sha256 {
        return Err(ImageError::RuntimeConfigChanged { file: file.into() });
    }
    let state_path = s.layout().state_file();
    let mut state = State::load(std::path::Path::new(&state_path))?.unwrap_or_default();
    // A file wkjoin changed earlier keeps its first original: reset must get back what the admin had.
    // Only while the file is still exactly what wkjoin wrote is the first original the one to restore.
    let (backup, original) = match &state.runtime_config {
        Some(prev) if prev.file == file && now.as_deref().map(sha256_hex).as_ref() == Some(&prev.written_sha256) => {
            (prev.backup.clone(), prev.original_sha256.clone())
        }
        _ => match &now {
            Some(text) => {
                host.write_file(std::path::Path::new(backup), text.as_bytes(), true)?;
                (Some(backup.to_string()), Some(sha256_hex(text)))
            }
            None => (None, None),
        },
    };
    state.runtime_config = Some(RuntimeConfigChange {
        file: file.into(),
        backup,
        original_sha256: original,
        written_sha256: sha256_hex(contents),
        service: RUNTIME_SERVICE.into(),
        restart: restart_command(s.os, s.runtime_facts.as_ref().is_some_and(|r| r.systemd_is_init)),
        endpoint: runtime_endpoint(s),
    });
    state.save(std::path::Path::new(&state_path), host)?;
    // A config readable only by its owner (registry credentials) stays that way.
    let private = host.owner_only(std::path::Path::new(file)).unwrap_or(false);
    host.write_file(std::path::Path::new(file), contents.as_bytes(), private)?;
    Ok(())
}

fn has_image(host: &mut impl crate::host::Host, s: &Settings, image: &str) -> Result<(bool, String), ImageError> {
    let args = ctr_args(s, &["images", "ls", "-q"]);
    let out = host.run("ctr", &args)?;
    if out.status != Some(0) {
        return Err(crate::host::HostError::CommandFailed {
            command: format!("ctr {}", args.join(" ")),
            status: out.status,
            stderr: out.stderr,
        }
        .into());
    }
    Ok((out.stdout.lines().any(|l| l.trim() == image), out.stdout.lines().collect::<Vec<_>>().join(", ")))
}

/// A local path for an archive given as a file or an http(s) URL (downloaded into the cache).
async fn local_archive(s: &Settings, source: &str, host: &mut impl crate::host::Host) -> Result<String, ImageError> {
    let lower = source.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        let path = source.strip_prefix("file://").unwrap_or(source);
        std::fs::metadata(path).map_err(|e| ImageError::Read { path: path.to_string(), source: e })?;
        return Ok(path.to_string());
    }
    let name = source.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("image.oci.tar");
    let cache = crate::layout::Layout::new(s.os, s.layout().cache_dir()).join(&["images", name]);
    let dl = crate::fetch::download::Downloader::new(Default::default())
        .map_err(|e| ImageError::Download { url: source.into(), source: Box::new(e) })?;
    match dl.get_small(source, 1 << 30).await {
        Ok(crate::fetch::download::Small::Found(bytes)) => {
            host.write_file(std::path::Path::new(&cache), &bytes, false)?;
            Ok(cache)
        }
        Ok(crate::fetch::download::Small::Missing) => Err(ImageError::Missing { url: source.into() }),
        Err(e) => Err(ImageError::Download { url: source.into(), source: Box::new(e) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings for a node whose containerd answered with `sandbox` and whose config file is `config`.
    fn with_runtime(
        os: crate::layout::Os,
        pause: &str,
        sandbox: &str,
        config: Option<&str>,
        systemd: bool,
    ) -> Settings {
        use crate::settings::{HostFacts, Origin, PartialSettings, resolve};
        let facts = crate::settings::runtime::answered(sandbox, "/etc/cni/net.d", config, systemd);
        let p = PartialSettings {
            node_name: Some("n1".into()),
            pause_image: Some(pause.into()),
            kubernetes_version: Some("v1.20.2".parse().unwrap()),
            ..Default::default()
        };
        let host = HostFacts { runtime: Some(facts), ..Default::default() };
        resolve(os, None, &[(Origin::CommandLine, &p)], &host).unwrap()
    }

    const DEBIAN_CONFIG: &str = "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n      conf_dir = \"/etc/cni/net.d\"\n";

    #[test]
    fn a_runtime_with_another_sandbox_image_is_reconfigured_and_restarted_then_checked() {
        let s = with_runtime(
            crate::layout::Os::Linux,
            "wkjoin.local/pause:1.0",
            "registry.k8s.io/pause:3.6",
            Some(DEBIAN_CONFIG),
            false,
        );
        let plan = plan(&s, Some("http://mirror/pause.oci.tar"), None).unwrap();
        let [
            Action::ConfigureRuntime { file, from, to, original_sha256, contents, backup },
            Action::RestartRuntime { command, sandbox_image, .. },
            Action::ImportImage { .. },
            Action::VerifyImage { image, .. },
        ] = plan.actions.as_slice()
        else {
            panic!("{plan:#?}")
        };
        assert_eq!(
            (file.as_str(), from.as_deref(), to.as_str()),
            ("/etc/containerd/config.toml", Some("registry.k8s.io/pause:3.6"), "wkjoin.local/pause:1.0")
        );
        assert_eq!(original_sha256.as_deref(), Some(sha256_hex(DEBIAN_CONFIG).as_str()));
        assert_eq!(backup, "/var/lib/wkjoin/backup/containerd-config.toml");
        // Only the sandbox image changes: the admin's CNI dirs stay.
        assert!(
            contents.contains("sandbox_image = \"wkjoin.local/pause:1.0\"")
                && contents.contains("conf_dir = \"/etc/cni/net.d\""),
            "{contents}"
        );
        assert_eq!(command.join(" "), "service containerd restart");
        assert_eq!((sandbox_image.as_str(), image.as_str()), ("wkjoin.local/pause:1.0", "wkjoin.local/pause:1.0"));
    }

    #[test]
    fn an_unreadable_runtime_config_is_never_replaced() {
        let mut s =
            with_runtime(crate::layout::Os::Linux, "wkjoin.local/pause:1.0", "registry.k8s.io/pause:3.6", None, false);
        s.runtime_facts.as_mut().unwrap().config_error =
            Some("cannot read /etc/containerd/config.toml: Is a directory".into());
        let err = align_runtime(&s).unwrap_err().to_string();
        assert!(err.contains("/etc/containerd/config.toml") && err.contains("Is a directory"), "{err}");
    }

    #[test]
    fn a_runtime_that_agrees_is_left_alone() {
        let s = with_runtime(
            crate::layout::Os::Linux,
            "registry.k8s.io/pause:3.6",
            "registry.k8s.io/pause:3.6",
            None,
            true,
        );
        assert!(align_runtime(&s).unwrap().is_empty());
        let plan = plan(&s, None, None).unwrap();
        assert!(matches!(plan.actions.as_slice(), [Action::Run { .. }, Action::VerifyImage { .. }]), "{plan:#?}");
    }

    #[test]
    fn the_restart_goes_through_the_hosts_service_manager() {
        use crate::layout::Os;
        assert_eq!(restart_command(Os::Linux, true).join(" "), "systemctl restart containerd");
        assert_eq!(restart_command(Os::Linux, false).join(" "), "service containerd restart");
        let windows = restart_command(Os::Windows, false).join(" ");
        assert!(windows.contains("Restart-Service -Force -Name containerd; $d | Start-Service"), "{windows}");
        // No config file yet: wkjoin writes one that sets only the sandbox image (reset removes it again).
        let s = with_runtime(Os::Linux, "wkjoin.local/pause:1.0", "registry.k8s.io/pause:3.6", None, true);
        let actions = align_runtime(&s).unwrap();
        let [Action::ConfigureRuntime { original_sha256: None, contents, .. }, Action::RestartRuntime { command, .. }] =
            actions.as_slice()
        else {
            panic!("{actions:#?}")
        };
        assert!(contents.contains("wkjoin.local/pause:1.0"), "{contents}");
        assert_eq!(command[0], "systemctl");
    }

    #[test]
    fn pause_releases_serve_the_windows_builds_they_were_built_for() {
        assert_eq!(pause_serves_build("registry.k8s.io/pause:3.6", 20348), Some(true));
        assert_eq!(pause_serves_build("registry.k8s.io/pause:3.9", 26100), Some(false));
        assert_eq!(pause_serves_build("registry.k8s.io/pause:3.10.2", 26100), Some(true));
        assert_eq!(pause_serves_build("k8s.gcr.io/pause:3.5", 20348), Some(false));
        assert_eq!(pause_serves_build("mcr.microsoft.com/oss/kubernetes/pause:3.6", 26100), None);
        assert_eq!(pause_serves_build("registry.k8s.io/pause:3.6", 19045), None);
    }

    #[test]
    fn builds_map_to_matching_tags_and_unknown_builds_list_the_known_ones() {
        assert_eq!(base_tag_for_build(20348), Ok("ltsc2022"));
        let err = base_tag_for_build(16299).unwrap_err().to_string();
        assert!(err.contains("16299") && err.contains("17763 (ltsc2019"), "{err}");
    }
}
