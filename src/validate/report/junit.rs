//! JUnit XML for CI: one testsuite per check, one testcase per cell, failures and errors with their command,
//! output and hint.

use super::{CellResult, Report, Summary, Verdict};
use std::fmt::Write as _;

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one testsuite per check, one testcase per cell.
pub fn render_junit(r: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let s = &r.summary;
    let _ = writeln!(
        out,
        "<testsuites name=\"wkjoin validate\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        r.cells.len(),
        s.fail,
        s.error,
        s.skip + s.known_limitation,
        r.duration_ms as f64 / 1000.0
    );
    let mut checks: Vec<_> = r.cells.iter().map(|c| c.cell.check).collect();
    checks.dedup();
    for check in checks {
        let cells: Vec<&CellResult> = r.cells.iter().filter(|c| c.cell.check == check).collect();
        let sum = Summary::of(&cells.iter().map(|c| (*c).clone()).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{check}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            cells.len(),
            sum.fail,
            sum.error,
            sum.skip + sum.known_limitation
        );
        for c in cells {
            let time = c.latency_ms.unwrap_or(0) as f64 / 1000.0;
            let _ = write!(
                out,
                "    <testcase classname=\"wkjoin.validate.{check}\" name=\"{}\" time=\"{time:.3}\"",
                xml(&c.cell.id)
            );
            let mut body = String::new();
            if let Some(cmd) = &c.command {
                let _ = writeln!(body, "command: {cmd}");
            }
            if !c.output.is_empty() {
                let _ = writeln!(body, "output:\n{}", c.output.trim_end());
            }
            if let Some(h) = &c.hint {
                let _ = writeln!(body, "hint: {h}");
            }
            let reason = c.reason.clone().unwrap_or_default();
            match c.result {
                Verdict::Pass => out.push_str("/>\n"),
                Verdict::Fail | Verdict::Error => {
                    let tag = if c.result == Verdict::Fail { "failure" } else { "error" };
                    let _ = writeln!(
                        out,
                        ">\n      <{tag} message=\"{}\">{}</{tag}>\n    </testcase>",
                        xml(&reason),
                        xml(&body)
                    );
                }
                Verdict::Skip | Verdict::KnownLimitation => {
                    let msg = format!("{}: {reason}", c.result.label());
                    let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(&msg));
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::report;
    use super::*;

    #[test]
    fn junit_and_json_carry_every_cell() {
        let r = report();
        let j = render_junit(&r);
        assert!(j.contains("<testsuites name=\"wkjoin validate\" tests=\"8\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.345\">"), "{j}");
        assert!(
            j.contains("<failure message=\"exit status 143 &amp; no &lt;answer&gt;\">command: timeout 5 wget"),
            "{j}"
        );
        assert!(j.contains("<skipped message=\"skip: sample not ready\"/>"), "{j}");
        assert_eq!(j.matches("<testcase ").count(), 8);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["cells"].as_array().unwrap().len(), 8);
        assert_eq!(v["cells"][3]["id"], "pod-to-pod/http/pod:master->pod:worker-1");
        assert_eq!(v["cells"][3]["source"], serde_json::json!({"on": "pod", "node": "master"}));
        assert_eq!(v["cells"][3]["result"], "fail");
        assert_eq!(v["summary"]["fail"], 1);
    }
}
