//! Runs one command in a pod through the exec subresource (websocket) and tells transport failures (exec
//! could not start, the exit status was lost) apart from the command's own result.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::AttachParams;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// What the command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when the exit status was lost in the stream (inconclusive).
    pub exit: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ExecOutput {
    /// stdout and stderr, for people.
    pub fn text(&self) -> String {
        let mut t = self.stdout.clone();
        if !self.stderr.trim().is_empty() {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(&self.stderr);
        }
        t
    }
}

/// The command never ran, or its result did not come back.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    #[error("exec into {pod} could not start: {message}")]
    Start { pod: String, message: String },
    #[error("exec into {pod} did not finish within {}s (the probe's own timeout did not fire)", .timeout.as_secs())]
    Timeout { pod: String, timeout: Duration },
    #[error("exec into {pod}: the stream broke: {message}")]
    Stream { pod: String, message: String },
}

/// Exit code from the Status the API server sends at the end of an exec.
pub fn exit_code(status: &Status) -> Option<i32> {
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    let causes = status.details.as_ref()?.causes.as_ref()?;
    causes
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref()?.trim().parse().ok())
}

pub async fn exec(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    let ap = AttachParams::default().container(container).stdin(false).stdout(true).stderr(true).tty(false);
    let run = async {
        let mut proc = api
            .exec(pod, argv.to_vec(), &ap)
            .await
            .map_err(|e| ExecError::Start { pod: pod.to_string(), message: e.to_string() })?;
        let mut out = proc.stdout().expect("stdout requested");
        let mut err = proc.stderr().expect("stderr requested");
        let status = proc.take_status().expect("status taken once");
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let (ro, re) = tokio::join!(out.read_to_end(&mut o), err.read_to_end(&mut e));
        if let Err(e) = ro.and(re) {
            return Err(ExecError::Stream { pod: pod.to_string(), message: e.to_string() });
        }
        let status = status.await;
        let _ = proc.join().await;
        Ok(ExecOutput {
            exit: status.as_ref().and_then(exit_code),
            stdout: String::from_utf8_lossy(&o).into_owned(),
            stderr: String::from_utf8_lossy(&e).into_owned(),
            elapsed: started.elapsed(),
        })
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(ExecError::Timeout { pod: pod.to_string(), timeout }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_status() {
        let ok: Status = serde_json::from_value(serde_json::json!({"status": "Success"})).unwrap();
        assert_eq!(exit_code(&ok), Some(0));
        let failed: Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }))
        .unwrap();
        assert_eq!(exit_code(&failed), Some(3));
        let lost: Status = serde_json::from_value(serde_json::json!({"status": "Failure", "message": "?"})).unwrap();
        assert_eq!(exit_code(&lost), None);
    }
}
