//! `wkjoin config --from FILE`: check a kubeconfig, then write its self-contained form owner-only and
//! atomically as the node's kubeconfig. Nothing is written unless every check passes (warnings are shown).

use super::ConfigError;
use super::check::{self, Options, Report};
use super::source::{self, Input};
use crate::host::Host;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Installed,
    /// The installed file already held exactly these credentials.
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub path: String,
    pub outcome: Outcome,
    pub report: Report,
}

/// Reads `input` (with `context`), checks it and installs it at `target`.
pub async fn run(
    input: &Input,
    context: Option<&str>,
    opts: &Options,
    target: &str,
    host: &mut impl Host,
) -> Result<Installed, ConfigError> {
    let resolved = source::load(input, context)?;
    install(&resolved, &input.describe(), opts, target, host).await
}

/// Checks the resolved kubeconfig (described as `origin` in the report) and installs it at `target`: nothing is
/// written unless every check passes.
pub async fn install(
    resolved: &source::Resolved,
    origin: &str,
    opts: &Options,
    target: &str,
    host: &mut impl Host,
) -> Result<Installed, ConfigError> {
    let checks = check::run(resolved, opts).await;
    let report = Report::new(origin.to_string(), Some(resolved), &opts.node_name, checks);
    if !report.passed() {
        return Err(ConfigError::ChecksFailed { report: Box::new(report), target: Some(target.to_string()) });
    }
    let yaml = resolved.to_yaml();
    let outcome = write_if_changed(target, &yaml, host)?;
    Ok(Installed { path: target.to_string(), outcome, report })
}

/// Writes `yaml` owner-only unless `target` already holds it.
pub fn write_if_changed(target: &str, yaml: &str, host: &mut impl Host) -> Result<Outcome, ConfigError> {
    // The same credentials with a mode someone widened are rewritten owner-only: a re-run repairs it.
    if host.read_file(Path::new(target))?.is_some_and(|old| old == yaml.as_bytes())
        && host.owner_only(Path::new(target)) != Some(false)
    {
        return Ok(Outcome::Unchanged);
    }
    host.write_file(Path::new(target), yaml.as_bytes(), true)?;
    Ok(Outcome::Installed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::recording::{Call, Recording};

    fn writes(host: &Recording) -> Vec<bool> {
        host.calls
            .iter()
            .filter_map(|c| match c {
                Call::WriteFile { private, .. } => Some(*private),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn writes_private_once_then_reports_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config").display().to_string();
        let mut host = Recording::default();
        assert_eq!(write_if_changed(&target, "a: 1\n", &mut host).unwrap(), Outcome::Installed);
        assert_eq!(write_if_changed(&target, "a: 1\n", &mut host).unwrap(), Outcome::Unchanged);
        assert_eq!(write_if_changed(&target, "a: 2\n", &mut host).unwrap(), Outcome::Installed);
        assert_eq!(writes(&host).len(), 2);
        assert!(writes(&host).iter().all(|private| *private));
    }

    #[cfg(unix)]
    #[test]
    fn credentials_someone_made_readable_are_made_owner_only_again() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config");
        let mut host = crate::host::Native;
        assert_eq!(write_if_changed(&target.display().to_string(), "a: 1\n", &mut host).unwrap(), Outcome::Installed);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = write_if_changed(&target.display().to_string(), "a: 1\n", &mut host).unwrap();
        assert_eq!(again, Outcome::Installed, "a widened mode is a change to repair");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        let third = write_if_changed(&target.display().to_string(), "a: 1\n", &mut host).unwrap();
        assert_eq!(third, Outcome::Unchanged);
    }

    #[tokio::test]
    async fn bad_input_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("bad.yaml");
        std::fs::write(&src, "clusters: [\n").unwrap();
        let target = dir.path().join("config").display().to_string();
        let opts = Options {
            node_name: "n".into(),
            kubelet_version: None,
            allow_insecure: false,
            timeout: std::time::Duration::from_secs(1),
        };
        let mut host = Recording::default();
        let e = run(&Input::File(src), None, &opts, &target, &mut host).await.unwrap_err();
        assert!(matches!(e, ConfigError::Source(source::SourceError::Parse { .. })), "{e:?}");
        assert!(writes(&host).is_empty());
        assert!(!Path::new(&target).exists());
    }
}
