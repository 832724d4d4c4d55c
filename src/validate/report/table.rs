//! The table for people: one line per cell, then each failure with its command, output and hint, the diagnosis,
//! the flaky cells and the summary line.

use super::{CellResult, Report, Verdict};
use std::fmt::Write as _;

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn indent(text: &str, prefix: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut out = String::new();
    let skip = lines.len().saturating_sub(max_lines);
    if skip > 0 {
        let _ = writeln!(out, "{prefix}… ({skip} lines above)");
    }
    for l in &lines[skip..] {
        let _ = writeln!(out, "{prefix}{l}");
    }
    out
}

/// The table, then each failure with its command, output and hint, then the summary line.
pub fn render_table(r: &Report) -> String {
    let mut out = String::new();
    let w_check = r.cells.iter().map(|c| c.cell.check.id().len() + c.cell.kind.id().len() + 1).max().unwrap_or(5);
    let w_src = r.cells.iter().map(|c| c.cell.source.to_string().len()).max().unwrap_or(6).max(6);
    let w_tgt = r.cells.iter().map(|c| c.cell.target.to_string().len()).max().unwrap_or(6).max(6);
    let _ = writeln!(
        out,
        "{:<7} {:<w_check$} {:<w_src$}    {:<w_tgt$} {:>7}",
        "RESULT", "CHECK", "SOURCE", "TARGET", "TIME"
    );
    for c in &r.cells {
        let check = format!("{}/{}", c.cell.check, c.cell.kind);
        let time = c.latency_ms.map(|ms| format!("{ms}ms")).unwrap_or_else(|| "-".into());
        let mut line = format!(
            "{:<7} {:<w_check$} {:<w_src$} -> {:<w_tgt$} {:>7}",
            c.result.label().split('-').next().unwrap_or_default(),
            check,
            c.cell.source.to_string(),
            c.cell.target.to_string(),
            time
        );
        if c.attempts > 1 {
            let _ = write!(line, " ({} attempts)", c.attempts);
        }
        if let Some(rec) = c.rounds.filter(|r| r.passed != r.runs && c.result != Verdict::Skip) {
            let _ = write!(line, " (passed {}/{} rounds)", rec.passed, rec.runs);
        }
        if matches!(c.result, Verdict::Skip | Verdict::KnownLimitation)
            && let Some(reason) = &c.reason
        {
            let _ = write!(line, "  {}: {reason}", c.result.label());
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let problems: Vec<&CellResult> =
        r.cells.iter().filter(|c| matches!(c.result, Verdict::Fail | Verdict::Error)).collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nFailures:");
    }
    for c in problems {
        let _ = writeln!(out, "{} {}", c.result.label(), c.cell.id);
        if let Some(cmd) = &c.command {
            let _ = writeln!(out, "  command: {cmd}");
        }
        if let Some(e) = &c.expect {
            let _ = writeln!(out, "  expected output containing: {e}");
        }
        if let Some(reason) = &c.reason {
            let _ = writeln!(out, "  reason:  {reason}");
        }
        if !c.output.trim().is_empty() {
            let _ = writeln!(out, "  output:");
            out.push_str(&indent(&c.output, "    | ", 8));
        }
        if let Some(h) = &c.hint {
            let _ = writeln!(out, "  hint:    {h}");
        }
    }
    if !r.hints.is_empty() {
        let _ = writeln!(out, "\nDiagnosis:");
        for h in &r.hints {
            let _ = writeln!(out, "- {} [{} cell{}]", h.text, h.cells.len(), if h.cells.len() == 1 { "" } else { "s" });
        }
    }
    if !r.flaky.is_empty() {
        let _ = writeln!(out, "\nFlaky (passed in some of the {} rounds only):", r.repeat);
        for id in &r.flaky {
            let passed = r.cells.iter().find(|c| &c.cell.id == id).and_then(|c| c.rounds).map(|x| x.passed);
            let _ = writeln!(out, "- {id}: passed {}/{}", passed.unwrap_or(0), r.repeat);
        }
    }
    for n in &r.not_validated {
        let _ = writeln!(out, "note: {n}");
    }
    let s = &r.summary;
    let _ = writeln!(
        out,
        "\n{}: {} passed, {} failed, {} errors, {} skipped, {} known limitations; {} nodes in {}{}{}",
        if s.ok() { "OK" } else { "FAILED" },
        s.pass,
        s.fail,
        s.error,
        s.skip,
        s.known_limitation,
        r.nodes.len(),
        secs(r.duration_ms),
        if r.repeat > 1 { format!(" ({} rounds)", r.repeat) } else { String::new() },
        if r.kept {
            format!(" (namespace {} kept: `kubectl delete namespace {}`)", r.namespace, r.namespace)
        } else {
            String::new()
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::report;
    use super::*;

    #[test]
    fn table_shows_cells_failures_and_summary() {
        let t = render_table(&report());
        assert!(t.starts_with("RESULT  CHECK           SOURCE          TARGET              TIME\n"), "{t}");
        assert!(t.contains("\nFAIL    pod-to-pod/http pod master   -> web pod worker-1    12ms\n"), "{t}");
        assert!(
            t.contains("\nskip    pod-to-pod/icmp pod master   -> web pod master      12ms  skip: sample not ready\n"),
            "{t}"
        );
        assert!(t.contains(
            "Failures:\nFAIL pod-to-pod/http/pod:master->pod:worker-1\n  command: timeout 5 wget -qO- http://10.244.1.5/\n  \
             reason:  exit status 143 & no <answer>\n  output:\n    | Terminated\n  hint:    a hint\n"
        ), "{t}");
        assert!(
            t.ends_with("\nFAILED: 6 passed, 1 failed, 0 errors, 1 skipped, 0 known limitations; 2 nodes in 2.3s\n"),
            "{t}"
        );
    }
}
