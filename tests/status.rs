//! `wkjoin status` reads what earlier runs recorded.

use crate::util::{failure_of, stdout_of, wkjoin};

#[test]
fn a_bare_host_is_reported_as_not_joined() {
    let root = tempfile::tempdir().unwrap();
    let out = stdout_of(wkjoin().arg("status").arg("--root-dir").arg(root.path()));
    assert!(out.starts_with("not joined: no wkjoin state at "), "{out}");
    let json = stdout_of(wkjoin().args(["status", "-o", "json"]).arg("--root-dir").arg(root.path()));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["joined"], false);
}

#[test]
fn recorded_steps_are_listed() {
    let root = tempfile::tempdir().unwrap();
    let mut state = wkjoin::state::State { node_name: Some("worker-1".into()), ..Default::default() };
    let plan = wkjoin::plan::Plan::new(wkjoin::plan::Step::Fetch, "install");
    state.record(&plan, std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
    std::fs::write(root.path().join("wkjoin-state.json"), serde_json::to_vec(&state).unwrap()).unwrap();

    let out = stdout_of(wkjoin().arg("status").arg("--root-dir").arg(root.path()));
    assert!(out.contains("node: worker-1"), "{out}");
    let fetch = out.lines().find(|l| l.starts_with("fetch")).unwrap();
    assert!(
        fetch.contains("done") && fetch.contains("2023-11-14T22:13:20Z") && fetch.contains(&plan.digest()[..12]),
        "{out}"
    );
    let routes = out.lines().find(|l| l.starts_with("routes")).unwrap();
    assert!(routes.contains("not run"), "{out}");
    assert!(!out.contains("wkjoin's own here"), "nothing is recorded as owned yet: {out}");
    let yaml = stdout_of(wkjoin().args(["status", "-o", "yaml"]).arg("--root-dir").arg(root.path()));
    assert!(yaml.contains("joined: true") && yaml.contains("fetch:"), "{yaml}");
}

#[test]
fn a_damaged_state_file_says_how_to_recover() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("wkjoin-state.json"), "{not json").unwrap();
    let (code, err) = failure_of(wkjoin().arg("status").arg("--root-dir").arg(root.path()));
    assert_eq!(code, 1);
    assert!(err.contains("is damaged") && err.contains("move it away"), "{err}");
}

#[test]
fn what_wkjoin_owns_is_listed() {
    let root = tempfile::tempdir().unwrap();
    let state = wkjoin::state::State {
        node_name: Some("win-1".into()),
        hns_network: Some(wkjoin::state::HnsNetworkRecord {
            name: "cbr0".into(),
            subnet: "10.244.1.0/24".parse().unwrap(),
        }),
        cni_plugins: Some(wkjoin::state::InstalledRelease {
            version: Some("v1.1.1".into()),
            os: "windows".into(),
            arch: "amd64".into(),
            source: "https://example/cni.tgz".into(),
            archive_sha512: String::new(),
            checksum: String::new(),
            installed_at: String::new(),
            bin_dir: "C:\\k\\cni".into(),
            files: vec![wkjoin::state::InstalledFile {
                name: "host-local.exe".into(),
                path: "C:\\k\\cni\\host-local.exe".into(),
                size: 1,
                sha256: String::new(),
                version: None,
            }],
        }),
        ..Default::default()
    };
    std::fs::write(root.path().join("wkjoin-state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
    let out = stdout_of(wkjoin().arg("status").arg("--root-dir").arg(root.path()));
    assert!(out.contains("wkjoin's own here (what `wkjoin reset` removes):"), "{out}");
    assert!(out.contains("  CNI plugins v1.1.1 in C:\\k\\cni: host-local.exe"), "{out}");
    assert!(out.contains("  HNS network cbr0 (10.244.1.0/24)"), "{out}");
}
