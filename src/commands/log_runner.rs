//! `wkjoin log-runner` (hidden): a program run with its output in a rotated log, as an SCM service or in the
//! foreground. The SCM captures nothing, and kubelet and kube-proxy log only to stderr from Kubernetes 1.26.

use super::{AppError, exit};
use crate::cli::LogRunnerArgs;
use crate::host::log_runner::{Limits, run_logged};
use std::sync::mpsc;

pub fn run(a: &LogRunnerArgs) -> Result<i32, AppError> {
    let (program, args) = (a.command[0].clone(), a.command[1..].to_vec());
    let (log, limits) = (a.log_file.clone(), Limits { max_bytes: a.max_size_mb << 20, keep: a.keep });
    let Some(name) = &a.service else {
        let (tx, rx) = mpsc::channel();
        // Ctrl-C stops the program as the SCM's stop would.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(tokio::signal::ctrl_c());
            }
            let _ = tx.send(());
        });
        return match run_logged(&program, &args, &log, limits, rx) {
            Ok(()) => Ok(exit::OK),
            Err(e) => {
                tracing::error!("{e}");
                Ok(exit::FAILED)
            }
        };
    };
    let body: crate::host::scm::ServiceBody = Box::new(move |stop| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = stop.blocking_recv();
            let _ = tx.send(());
        });
        run_logged(&program, &args, &log, limits, rx)
    });
    tokio::task::block_in_place(|| crate::host::scm::run_as_service(name, None, body))
        .map_err(crate::start::StartError::from)?;
    Ok(exit::OK)
}
