//! The default pause image: per OS and runtime, and per Windows build (a pause image must have a variant for
//! the host's build); the pause step uses these, settings picks the default from them.

use super::Runtime;
use crate::layout::Os;

/// The pause image the guide's kubelet expects when built with Docker on Windows.
pub const WINDOWS_DOCKER_PAUSE: &str = "kubeletwin/pause";
/// A multi-arch pause image with Windows variants, pulled through containerd.
pub const DEFAULT_PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.9";

/// The first `registry.k8s.io/pause` release with a Windows variant for each build (build/pause/CHANGELOG.md
/// in kubernetes/kubernetes: ltsc2022 from 3.6, ltsc2025 from 3.10.2).
const PAUSE_WINDOWS_SUPPORT: [(u32, [u32; 3]); 3] = [(17763, [3, 4, 1]), (20348, [3, 6, 0]), (26100, [3, 10, 2])];

/// Whether a Kubernetes pause image has a variant for this Windows build; `None` for images wkjoin cannot judge.
pub fn pause_serves_build(image: &str, build: u32) -> Option<bool> {
    let tag = image.strip_prefix("registry.k8s.io/pause:").or_else(|| image.strip_prefix("k8s.gcr.io/pause:"))?;
    let mut v = [0u32; 3];
    for (i, part) in tag.split('.').take(3).enumerate() {
        v[i] = part.parse().ok()?;
    }
    let need = PAUSE_WINDOWS_SUPPORT.iter().find(|(b, _)| *b == build)?.1;
    Some(v >= need)
}

/// The pause image wkjoin picks for a Windows build whose runtime's image has no variant for it.
pub fn pause_for_build(build: u32) -> &'static str {
    if build >= 26100 { "registry.k8s.io/pause:3.10.2" } else { DEFAULT_PAUSE_IMAGE }
}

/// The default pause image: the guide's locally built one with Docker on Windows, else the multi-arch one.
pub fn default_pause_image(os: Os, runtime: Runtime) -> &'static str {
    match (os, runtime) {
        (Os::Windows, Runtime::Docker) => WINDOWS_DOCKER_PAUSE,
        _ => DEFAULT_PAUSE_IMAGE,
    }
}
