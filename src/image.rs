//! `wkjoin pause`: the pod infrastructure image matching the host, through Docker or containerd.

use crate::plan::{Action, Contents, Plan, Step};
use crate::settings::{Runtime, Settings};

/// The pause image the guide's kubelet expects when built with Docker on Windows.
pub const WINDOWS_DOCKER_PAUSE: &str = "kubeletwin/pause";
/// A multi-arch pause image with Windows variants, pulled through containerd.
pub const DEFAULT_PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.9";

/// Windows builds and the base image tag whose OS matches them (process isolation needs an exact match).
pub const WINDOWS_BUILDS: [(u32, &str, &str); 3] = [
    (17763, "ltsc2019", "Windows Server 2019 / 1809"),
    (20348, "ltsc2022", "Windows Server 2022"),
    (26100, "ltsc2025", "Windows Server 2025"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error(
        "Windows build {build} has no matching container base image; known builds: {known}. Use --hyperv-isolation to run an older image"
    )]
    UnknownBuild { build: u32, known: String },
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
        (_, runtime) => match image_archive {
            Some(src) => {
                plan.push(Action::ImportImage { source: src.to_string(), image: pause_image(s) });
            }
            None => {
                let (program, args) = match runtime {
                    Runtime::Docker => ("docker", vec!["pull".to_string(), DEFAULT_PAUSE_IMAGE.to_string()]),
                    Runtime::Containerd => (
                        "ctr",
                        vec!["-n".into(), "k8s.io".into(), "images".into(), "pull".into(), DEFAULT_PAUSE_IMAGE.into()],
                    ),
                };
                plan.push(Action::Run {
                    program: program.into(),
                    args,
                    purpose: "pull the multi-arch pause image".into(),
                });
            }
        },
    }
    Ok(plan)
}

/// The pause image the kubelet is told about.
pub fn pause_image(s: &Settings) -> String {
    match (s.os, s.runtime) {
        (crate::layout::Os::Windows, Runtime::Docker) => WINDOWS_DOCKER_PAUSE.to_string(),
        _ => DEFAULT_PAUSE_IMAGE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_map_to_matching_tags_and_unknown_builds_list_the_known_ones() {
        assert_eq!(base_tag_for_build(20348), Ok("ltsc2022"));
        let err = base_tag_for_build(16299).unwrap_err().to_string();
        assert!(err.contains("16299") && err.contains("17763 (ltsc2019"), "{err}");
    }
}
