//! The results of a run: one per cell, the rounds of `--repeat` folded into one, and the summary. `-o json`
//! writes these types as they are (serde); the table and JUnit renderings are the submodules.

mod junit;
mod table;

pub use junit::render_junit;
pub use table::render_table;

use super::hints::Hint;
use super::matrix::{Cell, NodeInfo};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    /// The network did not deliver: the probe ran and failed.
    Fail,
    /// The probe could not run (its pod never started, exec failed): not a network verdict.
    Error,
    /// Not run because something it depends on failed (e.g. the sample pod is not Ready).
    Skip,
    /// Known not to work on this OS/mode (see the limitations table); not run.
    KnownLimitation,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
            Verdict::Skip => "skip",
            Verdict::KnownLimitation => "known-limitation",
        }
    }
}

/// One cell's result.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    #[serde(flatten)]
    pub cell: Cell,
    pub result: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Why it failed, errored or was skipped, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// With `--repeat N`: how many of the rounds passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<Rounds>,
}

/// A cell's record over the rounds of `--repeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rounds {
    pub runs: u32,
    pub passed: u32,
}

impl Rounds {
    /// Passed in some rounds and not in others.
    pub fn flaky(&self) -> bool {
        self.passed > 0 && self.passed < self.runs
    }
}

/// Folds the rounds of `--repeat` (each the same cells in the same order) into one result per cell: the first
/// failure (else error, else the first round) stands for the cell, with how many rounds passed; a cell that
/// passed only sometimes is a failure named flaky. Returns the results and the flaky cells' ids.
pub fn combine(mut rounds: Vec<Vec<CellResult>>) -> (Vec<CellResult>, Vec<String>) {
    let runs = rounds.len() as u32;
    if runs <= 1 {
        return (rounds.pop().unwrap_or_default(), Vec::new());
    }
    let width = rounds.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = Vec::with_capacity(width);
    let mut flaky = Vec::new();
    for i in 0..width {
        let passed = rounds.iter().filter(|r| r[i].result == Verdict::Pass).count() as u32;
        let pick = [Verdict::Fail, Verdict::Error]
            .iter()
            .find_map(|v| rounds.iter().position(|r| r[i].result == *v))
            .unwrap_or(0);
        let mut r = rounds[pick][i].clone();
        let rec = Rounds { runs, passed };
        if rec.flaky() {
            flaky.push(r.cell.id.clone());
            r.result = Verdict::Fail;
            let why = r.reason.take().map(|w| format!("; round {}: {w}", pick + 1)).unwrap_or_default();
            r.reason = Some(format!("flaky: passed {passed} of {runs} rounds{why}"));
        }
        r.rounds = Some(rec);
        out.push(r);
    }
    (out, flaky)
}

impl CellResult {
    pub fn new(cell: Cell, result: Verdict) -> CellResult {
        CellResult {
            cell,
            result,
            command: None,
            expect: None,
            reason: None,
            output: String::new(),
            exit_code: None,
            latency_ms: None,
            attempts: 0,
            hint: None,
            rounds: None,
        }
    }
    pub fn with_reason(mut self, reason: impl Into<String>) -> CellResult {
        self.reason = Some(reason.into());
        self
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub skip: usize,
    pub known_limitation: usize,
}

impl Summary {
    pub fn of(results: &[CellResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.result {
                Verdict::Pass => s.pass += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Error => s.error += 1,
                Verdict::Skip => s.skip += 1,
                Verdict::KnownLimitation => s.known_limitation += 1,
            }
        }
        s
    }
    pub fn ok(&self) -> bool {
        self.fail == 0 && self.error == 0
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub namespace: String,
    pub kept: bool,
    pub nodes: Vec<NodeInfo>,
    /// Ready nodes left out (`--node`) and nodes not Ready, with why.
    pub not_validated: Vec<String>,
    pub duration_ms: u64,
    pub summary: Summary,
    pub cells: Vec<CellResult>,
    pub hints: Vec<Hint>,
    /// How many times the matrix ran in this setup (`--repeat`).
    pub repeat: u32,
    /// Cells that passed in some rounds only (`--repeat`).
    pub flaky: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::super::matrix::tests::nodes;
    use super::super::matrix::{Selection, matrix};
    use super::*;

    pub(super) fn report() -> Report {
        let ns = nodes(2);
        let cells = matrix(&ns, &Selection { only: vec!["pod-to-pod".parse().unwrap()], ..Default::default() });
        let mut results: Vec<CellResult> = cells
            .into_iter()
            .map(|c| {
                let fail = c.id == "pod-to-pod/http/pod:master->pod:worker-1";
                let mut r = CellResult::new(c, if fail { Verdict::Fail } else { Verdict::Pass });
                r.latency_ms = Some(12);
                r.attempts = 1;
                if fail {
                    r.command = Some("timeout 5 wget -qO- http://10.244.1.5/".into());
                    r.reason = Some("exit status 143 & no <answer>".into());
                    r.output = "Terminated\n".into();
                    r.hint = Some("a hint".into());
                }
                r
            })
            .collect();
        results[0].result = Verdict::Skip;
        results[0].reason = Some("sample not ready".into());
        let summary = Summary::of(&results);
        Report {
            namespace: "wkjoin-validate-x".into(),
            kept: false,
            nodes: ns,
            not_validated: vec![],
            duration_ms: 2345,
            summary,
            cells: results,
            hints: vec![Hint { text: "a hint".into(), cells: vec!["pod-to-pod/http/pod:master->pod:worker-1".into()] }],
            repeat: 1,
            flaky: vec![],
        }
    }

    #[test]
    fn rounds_combine_into_one_result_per_cell_and_name_the_flaky_ones() {
        let one = report().cells;
        let mut two = one.clone();
        // round 2: the failed cell passes (flaky), a passing one fails (flaky), the skipped one stays skipped
        two[3].result = Verdict::Pass;
        two[3].reason = None;
        two[5].result = Verdict::Fail;
        two[5].reason = Some("no echo reply (exit status 1)".into());
        let (single, none) = combine(vec![one.clone()]);
        assert_eq!(single.len(), one.len());
        assert!(none.is_empty() && single.iter().all(|c| c.rounds.is_none()));
        let (cells, flaky) = combine(vec![one.clone(), two, one.clone()]);
        assert_eq!(cells.len(), one.len());
        assert_eq!(flaky, vec![one[3].cell.id.clone(), one[5].cell.id.clone()]);
        assert_eq!(cells[3].result, Verdict::Fail);
        assert_eq!(cells[3].rounds, Some(Rounds { runs: 3, passed: 1 }));
        assert_eq!(
            cells[3].reason.as_deref(),
            Some("flaky: passed 1 of 3 rounds; round 1: exit status 143 & no <answer>")
        );
        assert_eq!(
            cells[5].reason.as_deref(),
            Some("flaky: passed 2 of 3 rounds; round 2: no echo reply (exit status 1)")
        );
        assert_eq!(cells[0].result, Verdict::Skip);
        assert_eq!(cells[1].result, Verdict::Pass);
        assert_eq!(cells[1].rounds, Some(Rounds { runs: 3, passed: 3 }));
        let mut r = report();
        r.summary = Summary::of(&cells);
        r.cells = cells;
        r.flaky = flaky;
        r.repeat = 3;
        let t = render_table(&r);
        assert!(t.contains("12ms (passed 1/3 rounds)\n"), "{t}");
        assert!(t.contains("\nFlaky (passed in some of the 3 rounds only):\n- pod-to-pod/http/pod:master->pod:worker-1: passed 1/3\n"), "{t}");
        assert!(t.ends_with("2 nodes in 2.3s (3 rounds)\n"), "{t}");
    }
    /// `--local` cells: `local` in the SOURCE column (aligned with the others), in the JSON and the JUnit names.
    #[test]
    fn local_cells_render_like_the_others() {
        use super::super::matrix::{LocalMachine, NodeOs, Source};
        let local = Some(LocalMachine { os: NodeOs::Linux, node: None });
        let sel = Selection { only: vec!["node-to-pod".parse().unwrap()], local, ..Default::default() };
        let mut r = report();
        r.cells = matrix(&nodes(2), &sel).into_iter().map(|c| CellResult::new(c, Verdict::Pass)).collect();
        r.cells[0].latency_ms = Some(3);
        r.hints.clear();
        r.summary = Summary::of(&r.cells);
        assert_eq!(r.cells.iter().filter(|c| c.cell.source == Source::Local).count(), 2);
        let t = render_table(&r);
        assert!(t.contains("\npass    node-to-pod/http host master   -> web pod worker-1       -\n"), "{t}");
        assert!(t.contains("\npass    node-to-pod/http local         -> web pod worker-1       -\n"), "{t}");
        let j = render_junit(&r);
        assert!(j.contains("name=\"node-to-pod/http/local-&gt;pod:master\""), "{j}");
        let v = serde_json::to_value(&r).unwrap();
        let cell = v["cells"].as_array().unwrap().iter().find(|c| c["id"] == "node-to-pod/http/local->pod:master");
        assert_eq!(cell.unwrap()["source"], serde_json::json!({"on": "local"}));
    }
}
