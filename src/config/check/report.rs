//! The check report: each check's verdict (pass/skip/warn/fail) with its fix, and the report of one kubeconfig
//! printed as a table or as data (JSON/YAML).

use crate::config::source::Resolved;
use crate::output::OutputFormat;
use serde::Serialize;
use std::io::Write;

/// A check's verdict; `preflight` reports with the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Status {
    /// Upper case, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub(super) fn new(name: &'static str, status: Status, message: impl Into<String>, fix: Option<String>) -> Check {
        Check { name, status, message: message.into(), fix }
    }
    pub(super) fn pass(name: &'static str, message: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, message, None)
    }
    pub(super) fn skip(name: &'static str, message: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, message, None)
    }
    pub(super) fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Warn, message, Some(fix.into()))
    }
    pub(super) fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Fail, message, Some(fix.into()))
    }
}

/// The outcome of all checks of one kubeconfig.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kubeconfig: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub node_name: String,
    pub checks: Vec<Check>,
    pub failed: usize,
    pub warnings: usize,
}

impl Report {
    pub fn new(kubeconfig: String, resolved: Option<&Resolved>, node_name: &str, checks: Vec<Check>) -> Report {
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        let warnings = checks.iter().filter(|c| c.status == Status::Warn).count();
        Report {
            kubeconfig,
            context: resolved.map(|r| r.context.clone()),
            server: resolved.map(|r| r.server.clone()),
            node_name: node_name.to_string(),
            checks,
            failed,
            warnings,
        }
    }

    pub fn passed(&self) -> bool {
        self.failed == 0
    }

    pub fn print(&self, w: &mut impl Write, format: OutputFormat) -> std::io::Result<()> {
        if format != OutputFormat::Table {
            return crate::output::write_data(w, format, self);
        }
        writeln!(
            w,
            "checking {} (context {}, server {}) as the credentials of node {}",
            self.kubeconfig,
            self.context.as_deref().unwrap_or("-"),
            self.server.as_deref().unwrap_or("-"),
            self.node_name
        )?;
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            writeln!(w, "{} {:<width$}  {}", c.status.label(), c.name, c.message)?;
            if let Some(fix) = &c.fix {
                writeln!(w, "     {:<width$}  fix: {fix}", "")?;
            }
        }
        let total = self.checks.len();
        writeln!(w, "{} failed, {} warnings, {} checks", self.failed, self.warnings, total)
    }
}
