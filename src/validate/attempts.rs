//! Running the prepared cells: the first attempts batched into one exec per Linux source pod, then each cell
//! retried by its own policy until it passes or its window closes, its output read for the expected answer.

use super::matrix::{self, Cell, Kind, Target};
use super::prepare::{Ctx, Prepared, prepare};
use super::report::{CellResult, Verdict};
use super::{batch, local, probe};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One round: every cell prepared, then run, the pods' cells beside this machine's (`--local`); the results in
/// the cells' order.
pub(super) async fn round(ctx: &Ctx<'_>, cells: &[Cell]) -> Vec<CellResult> {
    let prepared: Vec<_> = cells.iter().map(|c| prepare(ctx, c)).collect();
    // local cells run beside the pods' (batches, then the rest), each side within the concurrency limit
    let is_local = |i: usize| matches!(&prepared[i], Ok(p) if p.local);
    let local_work: Vec<_> = cells.iter().cloned().enumerate().filter(|(i, _)| is_local(*i)).collect();
    let pod_side = async {
        let mut firsts = first_attempts(ctx, cells, &prepared).await;
        let work: Vec<_> = cells
            .iter()
            .cloned()
            .enumerate()
            .filter(|(i, _)| !is_local(*i))
            .map(|(i, c)| (i, c, firsts.remove(&i)))
            .collect();
        run_cells(ctx, &prepared, work).await
    };
    let local_side = run_cells(ctx, &prepared, local_work.into_iter().map(|(i, c)| (i, c, None)).collect());
    let (mut results, local_results) = tokio::join!(pod_side, local_side);
    results.extend(local_results);
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Retry policy per cell: (max attempts for a network failure, interval, window).
fn retry_policy(cell: &Cell) -> (u32, Duration, Duration) {
    match (cell.kind, &cell.target) {
        // the lab's DNS stand-in picks up a Service within ~3 s; real DNS within a TTL
        (Kind::Dns, _) => (40, Duration::from_millis(500), Duration::from_secs(10)),
        // kube-proxy programs a new Service within its sync period
        (_, Target::Service(_)) => (20, Duration::from_millis(500), Duration::from_secs(6)),
        (Kind::Icmp, _) => (2, Duration::from_millis(200), Duration::from_secs(10)),
        _ => (2, Duration::from_millis(200), Duration::from_secs(10)),
    }
}

/// Whether the probe's output shows the expected answer. DNS: the address after the queried name.
fn answered(kind: Kind, stdout: &str, expect: Option<&str>) -> bool {
    let Some(want) = expect else { return true };
    match kind {
        Kind::Dns => {
            // nslookup: answers follow "Name:"; without one only the server was printed
            let after = match stdout.find("Name:") {
                Some(i) => &stdout[i..],
                None if stdout.contains("Server:") => "",
                None => stdout,
            };
            after.split(|c: char| c.is_whitespace()).any(|tok| tok == want)
        }
        _ => stdout.contains(want),
    }
}

fn failure_reason(cell: &Cell, exit: Option<i32>, stdout: &str, expect: Option<&str>, timeout_secs: u64) -> String {
    match exit {
        Some(0) => format!("answered, but not with {:?}", expect.unwrap_or_default()),
        Some(124 | 143) => format!("no answer within {timeout_secs}s"),
        Some(code) => match cell.kind {
            Kind::Icmp => format!("no echo reply (exit status {code})"),
            Kind::Tcp => format!("no TCP connection to port {} (exit status {code})", matrix::KUBELET_PORT),
            Kind::Dns if stdout.contains("NXDOMAIN") || stdout.contains("can't find") => {
                "the name does not resolve".to_string()
            }
            _ => format!("exit status {code}"),
        },
        None => "the exit status was lost".to_string(),
    }
}

/// The command of the attempt `elapsed` into the cell's retry window. A Service kube-proxy has not programmed
/// yet swallows the connection: early attempts give up after 2 s (not the probe's 5 s; 2 s still covers the
/// SYN retransmit at 1 s once the rules are in) so the retry comes soon; the last ones get the full timeout.
/// (1 s measured slower: it cut off those retransmits.)
fn attempt_probe(cell: &Cell, probe: &matrix::Probe, elapsed: Duration) -> matrix::Probe {
    let (_, _, window) = retry_policy(cell);
    let early = matches!(cell.target, Target::Service(_)) && elapsed + Duration::from_secs(3) < window;
    if early { probe.with_timeout(2) } else { probe.clone() }
}

/// Every batchable cell's first attempt, one exec per source pod (pods in parallel). Cells whose batch was
/// lost are absent: they run on their own.
async fn first_attempts(
    ctx: &Ctx<'_>,
    cells: &[Cell],
    prepared: &[Result<Prepared, Box<CellResult>>],
) -> BTreeMap<usize, probe::ExecOutput> {
    let mut groups: BTreeMap<(&str, &str), Vec<batch::Item>> = BTreeMap::new();
    for (index, (cell, p)) in cells.iter().zip(prepared).enumerate() {
        if let Ok(p) = p
            && p.batch
        {
            let argv = attempt_probe(cell, &p.probe, Duration::ZERO).argv;
            let fresh = matches!(cell.target, Target::Service(_));
            groups.entry((p.pod.as_str(), p.container)).or_default().push(batch::Item { index, argv, fresh });
        }
    }
    let runs = futures::stream::iter(groups)
        .map(|((pod, container), items)| async move {
            match probe::exec(&ctx.pods, pod, container, &batch::script(&items), ctx.opts.probe_timeout).await {
                Ok(out) => {
                    tracing::debug!("batch of {} probes in {pod}: {} ms", items.len(), out.elapsed.as_millis());
                    batch::parse(&out.stdout)
                }
                Err(e) => {
                    tracing::debug!("batch of {} probes in {pod}: {e}; they run one by one", items.len());
                    BTreeMap::new()
                }
            }
        })
        .buffer_unordered(ctx.opts.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    runs.into_iter()
        .flatten()
        .map(|(i, o)| {
            let out =
                probe::ExecOutput { exit: Some(o.exit), stdout: o.output, stderr: String::new(), elapsed: o.elapsed };
            (i, out)
        })
        .collect()
}

/// Runs a prepared cell until it passes or its retries are spent; `first` is its first attempt when a batch
/// already ran it.
async fn attempts(ctx: &Ctx<'_>, cell: Cell, p: &Prepared, mut first: Option<probe::ExecOutput>) -> CellResult {
    let with_cmd = |mut r: CellResult| {
        r.command = Some(p.probe.display());
        r.expect = p.probe.expect.clone();
        r
    };
    let (max_net, interval, window) = retry_policy(&cell);
    let started = Instant::now();
    let mut attempts = 0;
    let mut transport_failures = 0;
    loop {
        attempts += 1;
        let res = match first.take() {
            Some(out) => Ok(out),
            None if p.local => local::run(cell.kind, &attempt_probe(&cell, &p.probe, started.elapsed()))
                .await
                .map_err(|e| e.to_string()),
            None => {
                let argv = attempt_probe(&cell, &p.probe, started.elapsed()).argv;
                probe::exec(&ctx.pods, &p.pod, p.container, &argv, ctx.opts.probe_timeout)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let last_chance = started.elapsed() + interval >= window;
        match res {
            Ok(out) if out.exit.is_some() => {
                let expect = p.probe.expect.as_deref();
                let ok = out.exit == Some(0) && answered(cell.kind, &out.stdout, expect);
                if ok || attempts >= max_net || last_chance {
                    let mut r = CellResult::new(cell, if ok { Verdict::Pass } else { Verdict::Fail });
                    if !ok {
                        let secs = ctx.opts.probe_timeout.as_secs().min(5);
                        // local HTTP: the client's own words (refused, unreachable, timed out), not curl's code
                        let native = p.local && r.cell.kind == Kind::Http && out.exit != Some(0);
                        r.reason = Some(if native {
                            out.stderr.trim().to_string()
                        } else {
                            failure_reason(&r.cell, out.exit, &out.stdout, expect, secs)
                        });
                        r.output = if native { out.stdout.clone() } else { out.text() };
                    }
                    r.exit_code = out.exit;
                    r.latency_ms = Some(out.elapsed.as_millis() as u64);
                    r.attempts = attempts;
                    return with_cmd(r);
                }
            }
            other => {
                // transport trouble or a lost exit status: inconclusive, retried a few times
                transport_failures += 1;
                if transport_failures >= 3 || last_chance {
                    let why = match other {
                        Err(e) => e,
                        Ok(_) if p.local => format!("{} ended without an exit status", p.probe.display()),
                        Ok(out) => {
                            format!("exec into {}: the exit status was lost; output: {}", p.pod, out.text().trim())
                        }
                    };
                    let mut r = CellResult::new(cell, Verdict::Error).with_reason(why);
                    r.attempts = attempts;
                    return with_cmd(r);
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Runs cells (each from its first attempt, when a batch ran it), at most `concurrency` at once.
async fn run_cells(
    ctx: &Ctx<'_>,
    prepared: &[Result<Prepared, Box<CellResult>>],
    work: Vec<(usize, Cell, Option<probe::ExecOutput>)>,
) -> Vec<(usize, CellResult)> {
    futures::stream::iter(work)
        .map(|(i, c, first)| async move {
            let r = match &prepared[i] {
                Err(r) => (**r).clone(),
                Ok(p) => attempts(ctx, c, p, first).await,
            };
            (i, r)
        })
        .buffer_unordered(ctx.opts.concurrency.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_answers_are_read_after_the_name() {
        let out =
            "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tweb-0.ns.svc.cluster.local\nAddress: 10.96.0.1\n";
        assert!(answered(Kind::Dns, out, Some("10.96.0.1")));
        assert!(!answered(Kind::Dns, "Server: 10.96.0.1\nAddress: 10.96.0.10:53\n", Some("10.96.0.1")));
        assert!(answered(Kind::Http, "hostname: web-1\n", Some("hostname: web-1")));
        assert!(!answered(Kind::Http, "hostname: web-2\n", Some("hostname: web-1")));
    }
}
