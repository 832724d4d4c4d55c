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
                    Runtime::Docker => ("docker", vec!["pull".to_string(), pause_image(s)]),
                    Runtime::Containerd => ("ctr", ctr_args(s, &["images", "pull", &pause_image(s)])),
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

/// The pause image the kubelet is told about (`--pause-image`, else the default for the OS and runtime).
pub fn pause_image(s: &Settings) -> String {
    s.pause_image.clone()
}

/// The default pause image: the guide's locally built one with Docker on Windows, else the multi-arch one.
pub fn default_pause_image(os: crate::layout::Os, runtime: Runtime) -> &'static str {
    match (os, runtime) {
        (crate::layout::Os::Windows, Runtime::Docker) => WINDOWS_DOCKER_PAUSE,
        _ => DEFAULT_PAUSE_IMAGE,
    }
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

/// Applies the pause plan: containerd images are imported (a URL is downloaded into the cache first) or
/// pulled only when the runtime does not have the image yet.
pub async fn apply(
    s: &Settings,
    plan: &Plan,
    host: &mut impl crate::host::Host,
) -> Result<PauseOutcome, crate::app::AppError> {
    let containerd = s.runtime == Runtime::Containerd;
    let image = pause_image(s);
    if containerd && has_image(host, s, &image)?.0 {
        return Ok(PauseOutcome::Present);
    }
    let mut outcome = PauseOutcome::Built;
    for action in &plan.actions {
        match action {
            Action::ImportImage { source, image } if containerd => {
                let file = local_archive(s, source, host).await?;
                let args = ctr_args(s, &["images", "import", &file]);
                crate::apply::apply(
                    &Plan {
                        step: Step::Pause,
                        summary: plan.summary.clone(),
                        actions: vec![Action::Run { program: "ctr".into(), args, purpose: format!("import {image}") }],
                    },
                    s.os,
                    host,
                )?;
                let (found, have) = has_image(host, s, image)?;
                if !found {
                    return Err(
                        ImageError::NotInArchive { source_name: source.clone(), image: image.clone(), have }.into()
                    );
                }
                outcome = PauseOutcome::Imported;
            }
            other => {
                if matches!(other, Action::Run { .. }) && containerd {
                    outcome = PauseOutcome::Pulled;
                }
                let one = Plan { step: Step::Pause, summary: plan.summary.clone(), actions: vec![other.clone()] };
                crate::apply::apply(&one, s.os, host)?;
            }
        }
    }
    Ok(outcome)
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

    #[test]
    fn builds_map_to_matching_tags_and_unknown_builds_list_the_known_ones() {
        assert_eq!(base_tag_for_build(20348), Ok("ltsc2022"));
        let err = base_tag_for_build(16299).unwrap_err().to_string();
        assert!(err.contains("16299") && err.contains("17763 (ltsc2019"), "{err}");
    }
}
