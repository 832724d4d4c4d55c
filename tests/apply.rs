//! Plans applied through the real host backend, into a temporary root.

use wkjoin::apply::{ApplyError, Outcome};
use wkjoin::host::{Host, Native};
use wkjoin::layout::Os;
use wkjoin::plan::{Action, Contents, Plan, Step};

/// The executor, with no cluster: these plans only touch the host.
fn apply(plan: &Plan, os: Os, host: &mut impl Host) -> Result<Outcome, ApplyError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(wkjoin::apply::apply(plan, os, host, &mut wkjoin::cluster::Offline, &Default::default()))
}

fn path(dir: &std::path::Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn files_and_directories_are_created_and_credentials_copied() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("source.kubeconfig");
    std::fs::write(&creds, "apiVersion: v1\nkind: Config\n").unwrap();
    let mut plan = Plan::new(Step::Config, "t");
    plan.push(Action::CreateDir { path: path(dir.path(), "a/b") })
        .push(Action::WriteFile {
            path: path(dir.path(), "a/b/c.txt"),
            contents: Contents::Text { text: "hello\n".into() },
            private: false,
        })
        .push(Action::WriteFile {
            path: path(dir.path(), "config"),
            contents: Contents::Credentials { source: creds.to_string_lossy().into_owned() },
            private: true,
        })
        .push(Action::RemovePath { path: path(dir.path(), "does-not-exist") });
    apply(&plan, Os::host(), &mut Native).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("a/b/c.txt")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("config")).unwrap(), "apiVersion: v1\nkind: Config\n");
    let leftovers: Vec<_> = crate::util::tree(dir.path()).into_iter().filter(|p| p.contains("wkjoin-tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn apply_stops_at_the_first_unsupported_action_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = Plan::new(Step::Start, "t");
    plan.push(Action::CreateDir { path: path(dir.path(), "first") })
        .push(Action::StartService { name: "kubelet".into(), restart: false })
        .push(Action::CreateDir { path: path(dir.path(), "never") });
    let err = apply(&plan, Os::host(), &mut Native).unwrap_err();
    assert!(matches!(err, ApplyError::Unsupported { step: Step::Start, .. }), "{err}");
    assert!(err.to_string().contains("start service kubelet"), "{err}");
    assert!(dir.path().join("first").is_dir() && !dir.path().join("never").exists());
}

#[test]
fn a_plan_for_another_os_is_refused_before_any_effect() {
    let dir = tempfile::tempdir().unwrap();
    let other = if Os::host() == Os::Linux { Os::Windows } else { Os::Linux };
    let mut plan = Plan::new(Step::Config, "t");
    plan.push(Action::CreateDir { path: path(dir.path(), "x") });
    let err = apply(&plan, other, &mut Native).unwrap_err();
    assert!(matches!(err, ApplyError::ForeignOs { .. }), "{err}");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_failing_command_reports_its_exit_code_and_stderr() {
    let mut plan = Plan::new(Step::Pause, "t");
    let (program, args) = match Os::host() {
        Os::Linux => ("sh", vec!["-c".to_string(), "echo boom-wkjoin >&2; exit 3".to_string()]),
        Os::Windows => ("cmd", vec!["/c".to_string(), "echo boom-wkjoin 1>&2 & exit 3".to_string()]),
    };
    plan.push(Action::Run { program: program.into(), args, purpose: "t".into() });
    let err = apply(&plan, Os::host(), &mut Native).unwrap_err().to_string();
    assert!(err.contains("failed with exit code 3") && err.contains("boom-wkjoin"), "{err}");
    let mut missing = Plan::new(Step::Pause, "t");
    missing.push(Action::Run { program: "wkjoin-no-such-program".into(), args: vec![], purpose: "t".into() });
    let err = apply(&missing, Os::host(), &mut Native).unwrap_err().to_string();
    assert!(err.contains("cannot run wkjoin-no-such-program") && err.contains("on PATH"), "{err}");
}

#[test]
fn write_file_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    Native.write_file(&p, b"old", false).unwrap();
    Native.write_file(&p, b"new", true).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"new");
}

#[test]
fn the_host_routing_table_can_be_read() {
    // Linux: rtnetlink in the test's namespace; Windows (under wine too): GetIpForwardTable2.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let net = rt.block_on(async { wkjoin::host::RouteTable::connect().unwrap().snapshot(&[]).await.unwrap() });
    assert!(!net.interfaces.is_empty(), "no interfaces: {net:?}");
    assert!(!net.routes.is_empty(), "no routes: {net:?}");
    assert!(net.routes.iter().all(|r| !r.owned), "nothing is wkjoin's without a state file");
}
