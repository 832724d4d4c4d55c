//! `wkjoin pause`: the pod infrastructure image matching the host, through Docker or containerd: the plan
//! (here), the one pause image agreed with the runtime ([`runtime`]), and the step's apply ([`apply`]).

mod apply;
mod runtime;

pub use apply::{Observed, PauseOutcome, PauseReport, apply, observe};
pub use runtime::{RUNTIME_RESTART_TIMEOUT_SECS, RUNTIME_SERVICE, align_runtime, restart_command};

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
    #[error(
        "the image archive {url} has no published checksum ({url}.sha256): publish one, or give --image-archive-sha256; nothing was imported"
    )]
    NoChecksum { url: String },
    #[error(
        "the image archive {source_name} has sha256 {actual}, not {expected}: it was changed or damaged on the way; nothing was imported"
    )]
    ChecksumMismatch { source_name: String, expected: String, actual: String },
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
    plan_observed(s, image_archive, None, windows_build, Observed::default())
}

/// The plan for what [`observe`] found: a runtime that has the image already is not asked to pull or import it.
pub fn plan_observed(
    s: &Settings,
    image_archive: Option<&str>,
    archive_sha256: Option<&str>,
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
                    let sha256 = archive_sha256.map(|h| h.to_ascii_lowercase());
                    plan.push(Action::ImportImage { source: src.to_string(), image: pause_image(s), sha256 });
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
