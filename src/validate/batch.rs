//! Runs many probes of one Linux pod through a single exec: one `sh -c` script starts them all at once and
//! tags each output line with the probe's index, so one exec (not one per cell) pays the API server → kubelet
//! → runtime round trip. Each probe's own timeout still bounds it; its time comes from /proc/uptime (10 ms).
//! A probe marked `fresh` (a Service kube-proxy may still be programming) is started again on a new
//! connection every 0.2 s until one answers, rather than waiting out TCP's 1 s SYN retransmit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// One probe of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub index: usize,
    pub argv: Vec<String>,
    /// Start it anew 5 times 0.2 s apart; the first attempt that exits 0 answers.
    pub fresh: bool,
}

/// What one probe of a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit: i32,
    /// stdout and stderr, interleaved as the probe wrote them.
    pub output: String,
    pub elapsed: Duration,
}

/// Quotes a word for a POSIX shell.
fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

// `p INDEX ARGV...`: runs ARGV, prints its output as "INDEX|line" and then "INDEX#EXIT START END" (uptimes).
// `s ARGV...`: ARGV started at 0, 0.2 ... 0.8 s (each skipped once one answered); the first answer wins, else
// the last attempt's result. Attempts write to files, never to the pipe, so a hung one cannot hold the exec
// (hence `exec 2>&1`: a function call's `2>&1` keeps a copy of the pipe that the attempts would inherit).
const RUNNER: &str = r#"p() { i=$1; shift; read -r a _ </proc/uptime; o=$(exec 2>&1; "$@"); r=$?; read -r b _ </proc/uptime; printf '%s\n' "$o" | sed "s/^/$i|/"; echo "$i#$r $a $b"; }
s() { t=${TMPDIR:-/tmp}/wkjoin.$$.$i; rm -rf "$t"; mkdir -p "$t" || { "$@"; return; }
for k in 0 1 2 3 4; do ( sleep "0.$((k * 2))"; [ -e "$t/ok" ] && exit; "$@" >"$t/$k" 2>&1; r=$?; [ $r = 0 ] && mv "$t/$k" "$t/ok"; echo $r >"$t/rc$k" ) >/dev/null 2>&1 & done
while [ ! -e "$t/ok" ] && [ ! -e "$t/rc4" ]; do sleep 0.05; done
if [ -e "$t/ok" ]; then cat "$t/ok"; r=0; else cat "$t/4"; r=$(cat "$t/rc4"); fi; rm -rf "$t"; return $r; }"#;

/// The argv of one exec that runs every item at once (busybox or any POSIX `sh` with `sed`).
pub fn script(items: &[Item]) -> Vec<String> {
    let mut s = String::from(RUNNER);
    s.push('\n');
    for it in items {
        let words = it.argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let _ = writeln!(s, "p {} {}{words} &", it.index, if it.fresh { "s " } else { "" });
    }
    s.push_str("wait\n");
    vec!["sh".to_string(), "-c".to_string(), s]
}

/// Reads a batch's output back into one outcome per index; a probe without its end line is absent (its
/// result was lost and it must run again on its own).
pub fn parse(stdout: &str) -> BTreeMap<usize, Outcome> {
    let mut lines: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    let mut ends: BTreeMap<usize, (i32, Duration)> = BTreeMap::new();
    for line in stdout.lines() {
        let Some(cut) = line.find(['|', '#']) else { continue };
        let Ok(i) = line[..cut].parse::<usize>() else { continue };
        let rest = &line[cut + 1..];
        if line.as_bytes()[cut] == b'|' {
            lines.entry(i).or_default().push(rest);
            continue;
        }
        let mut f = rest.split_whitespace();
        let (Some(Ok(exit)), Some(Ok(a)), Some(Ok(b))) =
            (f.next().map(str::parse::<i32>), f.next().map(str::parse::<f64>), f.next().map(str::parse::<f64>))
        else {
            continue;
        };
        ends.insert(i, (exit, Duration::from_secs_f64((b - a).max(0.0))));
    }
    ends.into_iter()
        .map(|(i, (exit, elapsed))| {
            let output = lines.remove(&i).unwrap_or_default().join("\n").trim_end().to_string();
            (i, Outcome { exit, output, elapsed })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, words: &[&str]) -> Item {
        Item { index, argv: words.iter().map(|w| w.to_string()).collect(), fresh: false }
    }

    fn run(items: &[Item], tmp: &std::path::Path) -> BTreeMap<usize, Outcome> {
        let argv = script(items);
        let out = std::process::Command::new(&argv[0]).args(&argv[1..]).env("TMPDIR", tmp).output().expect("sh runs");
        parse(&String::from_utf8_lossy(&out.stdout))
    }

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(quote("http://10.96.0.1:80/"), "http://10.96.0.1:80/");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
    }

    #[test]
    fn outputs_are_read_back_per_probe() {
        let out =
            "1|hostname: web-1\n0|PING 10.0.0.1\n1#0 100.25 100.40\n0|1 packets received\n0#1 100.20 102.20\n2|x\n";
        let got = parse(out);
        assert_eq!(got.len(), 2, "probe 2 never ended: absent");
        assert_eq!(
            got[&0],
            Outcome { exit: 1, output: "PING 10.0.0.1\n1 packets received".into(), elapsed: Duration::from_secs(2) }
        );
        assert_eq!(got[&1].output, "hostname: web-1");
        assert_eq!(got[&1].elapsed.as_millis(), 150);
    }

    /// The script runs under a real POSIX shell: outputs, exit codes and quoting survive, and probes run at
    /// once (probe 0 waits for a file only probe 1, started after it, creates).
    #[test]
    fn the_script_runs_probes_at_once_under_sh() {
        if crate::layout::Os::host() == crate::layout::Os::Windows {
            return; // batches run in Linux pods; a Windows build has no sh to run one here
        }
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("b").display().to_string();
        let wait = format!(
            "timeout 5 sh -c 'until [ -e {flag} ]; do sleep 0.05; done'; sleep 0.3; echo 'it'\"'\"'s'; echo two"
        );
        let got = run(
            &[
                item(0, &["sh", "-c", &wait]),
                item(1, &["sh", "-c", &format!("touch {flag}; echo oops >&2; exit 3")]),
                item(2, &["printf", "no newline"]),
                item(7, &["echo", "a  b", "$(false)"]),
            ],
            dir.path(),
        );
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!((got[&0].exit, got[&0].output.as_str()), (0, "it's\ntwo"), "probe 0 never saw probe 1 run");
        assert_eq!((got[&1].exit, got[&1].output.as_str()), (3, "oops"));
        assert_eq!(got[&2].output, "no newline");
        assert_eq!(got[&7].output, "a  b $(false)");
        assert!(got[&0].elapsed >= Duration::from_millis(290), "{:?}", got[&0].elapsed);
    }

    /// A fresh probe answers from a later attempt while the first still hangs (as a SYN sent before kube-proxy
    /// programmed the Service does), and reports the last failure when none answers.
    #[test]
    fn fresh_probes_start_again_until_one_answers() {
        if crate::layout::Os::host() == crate::layout::Os::Windows {
            return; // batches run in Linux pods; a Windows build has no sh to run one here
        }
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up").display().to_string();
        let service = format!("if [ -e {up} ]; then echo answered; else sleep 5; echo silent; exit 1; fi");
        let mut hanging = item(0, &["sh", "-c", &service]);
        hanging.fresh = true;
        let mut failing = item(1, &["sh", "-c", "echo refused; exit 4"]);
        failing.fresh = true;
        let late = item(2, &["sh", "-c", &format!("sleep 0.1; touch {up}")]);
        let tmp = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let got = run(&[hanging, failing, late], tmp.path());
        assert_eq!((got[&0].exit, got[&0].output.as_str()), (0, "answered"));
        assert_eq!((got[&1].exit, got[&1].output.as_str()), (4, "refused"));
        // the first attempt hung for 5 s; the answer came from a later one
        assert!(started.elapsed() < Duration::from_secs(4), "waited for the hung attempt: {:?}", started.elapsed());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "attempt files left behind");
    }
}
