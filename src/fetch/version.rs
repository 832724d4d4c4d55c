//! The version a node binary reports of itself, asked with the arguments that make each one print it without
//! side effects.

use crate::version::KubeVersion;
use std::path::Path;
use std::time::Duration;

/// The arguments that make each binary print its version without side effects.
fn version_args(name: &str) -> &'static [&'static str] {
    match name.trim_end_matches(".exe") {
        "kubectl" => &["version", "--client"],
        "kubeadm" => &["version", "-o", "short"],
        _ => &["--version"],
    }
}

/// Runs `<binary> --version` (or its equivalent) and finds the Kubernetes version in what it prints.
pub async fn binary_version(name: &str, path: &Path) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(version_args(name)).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let shown = format!("{} {}", name, version_args(name).join(" "));
    let out = match tokio::time::timeout(Duration::from_secs(30), cmd.output()).await {
        Err(_) => return Err(format!("`{shown}` did not finish within 30s")),
        Ok(Err(e)) => return Err(format!("cannot run `{shown}`: {e}")),
        Ok(Ok(out)) => out,
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let text = format!("{stdout}\n{stderr}");
    if !out.status.success() {
        let first_line = |t: &str| t.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string);
        let first = first_line(&stderr).or_else(|| first_line(&stdout)).unwrap_or_default();
        return Err(format!("`{shown}` failed ({}): {first}", out.status));
    }
    KubeVersion::find_in(&text).map(|v| v.to_string()).ok_or_else(|| format!("`{shown}` printed no version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_commands_have_no_side_effects() {
        assert_eq!(version_args("kubelet.exe"), ["--version"]);
        assert_eq!(version_args("kubectl"), ["version", "--client"]);
        assert_eq!(version_args("kubeadm"), ["version", "-o", "short"]);
    }
}
