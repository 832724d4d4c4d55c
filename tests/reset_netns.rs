//! `wkjoin reset` against real kernel state, in a network (and mount) namespace this test creates: a joined-looking
//! node (cbr0, a proto-147 route, KUBE-* chains, a kubelet tmpfs, wkjoin's files) returns to bare, foreign things
//! stay, and re-applying the same plan is harmless.

use crate::util::netns::Netns;
use crate::util::wkjoin;
use std::path::Path;
use wkjoin::layout::Os;
use wkjoin::plan::Action;
use wkjoin::reset::{self, Observed, ResetOptions};
use wkjoin::settings::{HostFacts, Origin, PartialSettings, Settings, resolve};
use wkjoin::state::State;

fn settings(root: &Path) -> Settings {
    let p = PartialSettings {
        node_name: Some("reset-test".into()),
        // A network name of its own keeps the host-local IPAM dir (/var/lib/cni/networks/<name>) unique.
        network_name: Some(format!("wkjt{}", std::process::id())),
        runtime_endpoint: Some(format!("unix://{}", root.join("no-containerd.sock").display())),
        // The runtime's CNI conf dir, here one of the test's own (containerd's would be /etc/cni/net.d).
        cni_conf_dir: Some(root.join("cni/config").to_string_lossy().into_owned()),
        kubernetes_version: Some("v1.20.2".parse().unwrap()),
        ..Default::default()
    };
    resolve(Os::Linux, Some(&root.to_string_lossy()), &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Observe, plan and apply inside the namespace; returns (plan actions, what is observed afterwards).
fn reset_in(ns: &Netns, s: &Settings, mount_tmpfs: bool) -> (Vec<Action>, Observed, Vec<Action>) {
    let s = s.clone();
    ns.run(true, move || {
        if mount_tmpfs {
            let vol = Path::new(&s.layout().kubelet_dir()).join("pods/p1/volumes/token");
            std::fs::create_dir_all(&vol).unwrap();
            nix::mount::mount(Some("tmpfs"), &vol, Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>)
                .expect("mount a tmpfs");
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let opts = ResetOptions::default();
            let o = reset::observe(&s, None, &opts).await.unwrap();
            let plan = reset::plan(&s, &o, &opts);
            reset::apply(&plan, Os::Linux, &mut wkjoin::host::Native, &mut wkjoin::cluster::Offline).await.unwrap();
            // The same plan again: every action finds its thing gone and is fine with it.
            reset::apply(&plan, Os::Linux, &mut wkjoin::host::Native, &mut wkjoin::cluster::Offline).await.unwrap();
            let after = reset::observe(&s, None, &opts).await.unwrap();
            let replan = reset::plan(&s, &after, &opts);
            (plan.actions, after, replan.actions)
        })
    })
}

#[test]
fn reset_returns_a_joined_namespace_to_bare_and_leaves_foreign_things() {
    let ns = Netns::new("reset-joined", "172.31.9.11/24");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let s = settings(&root);
    let l = s.layout();

    ns.ip(&["link", "add", "cbr0", "type", "bridge"]);
    ns.ip(&["route", "add", "10.244.2.0/24", "via", "172.31.9.12", "proto", "147"]);
    ns.ip(&["route", "add", "10.200.0.0/16", "via", "172.31.9.1"]); // someone else's
    for rule in [
        vec!["-t", "nat", "-N", "KUBE-MARK-MASQ"],
        vec!["-t", "nat", "-A", "KUBE-MARK-MASQ", "-j", "MARK", "--set-xmark", "0x4000/0x4000"],
        vec!["-t", "nat", "-A", "POSTROUTING", "-j", "KUBE-MARK-MASQ"],
        vec!["-t", "nat", "-N", "FOREIGN"],
        vec!["-t", "nat", "-A", "POSTROUTING", "-j", "FOREIGN"],
        // Comments (kube-proxy writes them) survive the listing and the precise delete, ours and others'.
        vec![
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-m",
            "comment",
            "--comment",
            "kubernetes postrouting rules",
            "-j",
            "KUBE-MARK-MASQ",
        ],
        vec!["-t", "nat", "-A", "FOREIGN", "-m", "comment", "--comment", "someone's \"own\" rule", "-j", "RETURN"],
        vec!["-t", "filter", "-N", "KUBE-FIREWALL"],
        vec!["-t", "filter", "-A", "INPUT", "-j", "KUBE-FIREWALL"],
    ] {
        let mut args = vec!["iptables"];
        args.extend(rule);
        ns.exec(&args);
    }
    State::default().save(Path::new(&l.state_file()), &mut wkjoin::host::Native).unwrap();
    write(Path::new(&l.kubeconfig()), "apiVersion: v1\n");
    write(Path::new(&l.binary("kubelet")), "#!/bin/sh\n");
    write(&Path::new(&s.cni_conf_dir).join("10-wkjoin.conflist"), "{}");
    write(&Path::new(&s.cni_conf_dir).join("99-other.conflist"), "{}");
    write(&Path::new(&l.cache_dir()).join("kubernetes-node-linux-amd64.tar.gz"), "x");
    write(&root.join("notes.txt"), "an admin's own file in the root");
    // Read only (what reset would leave alone); the reset itself runs inside the namespace below.
    let opts = ResetOptions::default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let before = rt.block_on(wkjoin::reset::observe(&s, None, &opts)).unwrap();
    let said = before.left_alone.join("\n");
    assert!(said.contains("notes.txt: in the root dir, but not something wkjoin makes"), "{said}");
    assert!(said.contains("99-other.conflist: another CNI config") && !said.contains("10-wkjoin"), "{said}");
    assert!(!said.contains("/bin") && !said.contains("state"), "wkjoin's own things are not left alone: {said}");

    let (actions, after, replan) = reset_in(&ns, &s, true);

    let has = |f: &dyn Fn(&Action) -> bool| actions.iter().any(f);
    assert!(has(&|a| matches!(a, Action::RemoveLink { name } if name == "cbr0")), "{actions:#?}");
    assert!(has(&|a| matches!(a, Action::DeleteRoute { route } if route.destination.to_string() == "10.244.2.0/24")));
    assert!(!has(&|a| matches!(a, Action::DeleteRoute { route } if route.destination.to_string() == "10.200.0.0/16")));
    assert!(has(&|a| matches!(a, Action::Unmount { path } if path.ends_with("pods/p1/volumes/token"))), "{actions:#?}");
    assert!(has(&|a| matches!(a, Action::RemoveIptablesChains { table, .. } if table == "nat")), "{actions:#?}");
    assert!(after.is_bare(), "{after:#?}");
    assert!(replan.is_empty(), "a second reset has nothing to do: {replan:#?}");

    // The kernel agrees.
    assert!(!ns.ip(&["-o", "link", "show"]).contains("cbr0"), "{}", ns.ip(&["link", "show"]));
    assert!(ns.ip(&["route", "show", "proto", "147"]).trim().is_empty());
    assert!(ns.ip(&["route", "show"]).contains("10.200.0.0/16 via 172.31.9.1"), "foreign route kept");
    let rules = ns.exec(&["iptables-save"]);
    assert!(!rules.contains("KUBE-"), "{rules}");
    assert!(rules.contains(":FOREIGN") && rules.contains("-A POSTROUTING -j FOREIGN"), "{rules}");
    assert!(rules.contains("-A FOREIGN -m comment --comment") && rules.contains("own"), "{rules}");
    assert!(!rules.contains("kubernetes postrouting"), "{rules}");
    // Files: wkjoin's are gone; the CNI dir (watched by containerd), others' configs and the cache stay.
    for gone in [l.state_file(), l.kubeconfig(), l.bin_dir(), l.kubelet_dir()] {
        assert!(!Path::new(&gone).exists(), "{gone} is still there");
    }
    let cni = std::path::PathBuf::from(&s.cni_conf_dir);
    assert!(cni.join("99-other.conflist").exists() && !cni.join("10-wkjoin.conflist").exists());
    assert!(Path::new(&l.cache_dir()).join("kubernetes-node-linux-amd64.tar.gz").exists());
    assert!(root.join("notes.txt").exists());
}

#[test]
fn reset_on_a_bare_host_says_so_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // --dry-run: even if this host had routes tagged as wkjoin's, a test must not remove them.
    let out = wkjoin()
        .args(["reset", "--dry-run", "--node-name", "bare"])
        .arg("--root-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("nothing to reset"), "{stdout}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was created");
}

/// Without wkjoin's state file nothing under the root dir is provably wkjoin's: reset removes none of it (the
/// bin/, logs/ and pki/ there could be anyone's, e.g. under a mistyped --root-dir).
#[test]
fn reset_without_a_state_file_removes_no_files() {
    let ns = Netns::new("reset-nostate", "172.31.9.21/24");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let s = settings(&root);
    let l = s.layout();
    let theirs = [l.binary("kubelet"), l.kubeconfig(), format!("{}/kubelet.log", l.log_dir()), l.pki_dir() + "/ca.crt"];
    for f in &theirs {
        write(Path::new(f), "someone's");
    }
    let (actions, after, _) = reset_in(&ns, &s, false);
    assert!(actions.is_empty(), "{actions:#?}");
    // And it says why it leaves them: nothing there is provably wkjoin's.
    let said = after.left_alone.join("\n");
    assert!(said.contains("no state file, so nothing in") && said.contains("/bin"), "{said}");
    for f in &theirs {
        assert!(Path::new(f).exists(), "reset removed {f}");
    }
}
