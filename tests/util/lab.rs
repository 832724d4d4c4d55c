//! The lab cluster (`scripts/lab`) for end-to-end tests. Lab tests are named `lab_*`, are `#[ignore]`d so a
//! plain `cargo test` never needs root or a cluster, and run with `cargo test -- --ignored lab_ --test-threads 1`
//! after `scripts/lab up`.
// Each test area uses a different part of this helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// What `scripts/lab env` prints about the running lab.
#[derive(Debug)]
pub struct Lab {
    pub repo: PathBuf,
    pub dir: PathBuf,
    /// The admin's kubeconfig (O=system:masters).
    pub kubeconfig: PathBuf,
    pub mirror: String,
    pub api: String,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub dns: String,
    pub workers: u32,
    /// Linux Kubernetes binaries (kubectl, kubelet, ...).
    pub bin: PathBuf,
    /// Windows Kubernetes binaries (kubelet.exe, ...).
    pub win_bin: PathBuf,
}

impl Lab {
    /// The running lab; panics with the fix when it is not up.
    pub fn get() -> &'static Lab {
        static LAB: OnceLock<Lab> = OnceLock::new();
        LAB.get_or_init(|| {
            let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let out = Command::new(repo.join("scripts/lab")).arg("env").output().expect("run scripts/lab env");
            assert!(
                out.status.success(),
                "the lab is not up ({}): run `scripts/lab up` first",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            let vars: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let var = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("scripts/lab env did not print {k}"));
            Lab {
                dir: var("WKJOIN_LAB_DIR").into(),
                kubeconfig: var("KUBECONFIG").into(),
                mirror: var("WKJOIN_LAB_MIRROR"),
                api: var("WKJOIN_LAB_API"),
                cluster_cidr: var("WKJOIN_LAB_CLUSTER_CIDR"),
                service_cidr: var("WKJOIN_LAB_SERVICE_CIDR"),
                dns: var("WKJOIN_LAB_DNS"),
                workers: var("WKJOIN_LAB_WORKERS").parse().expect("worker count"),
                bin: var("WKJOIN_LAB_BIN").into(),
                win_bin: var("WKJOIN_LAB_WIN_BIN").into(),
                repo,
            }
        })
    }

    /// Serialises tests that change one node (join, reset, start): held until the guard drops.
    pub fn lock(&self, node: &str) -> NodeLock {
        let dir = self.dir.join("locks");
        std::fs::create_dir_all(&dir).expect("lock dir");
        let file = File::create(dir.join(format!("{node}.lock"))).expect("lock file");
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(NodeLock)
            .unwrap_or_else(|(_, e)| panic!("lock {node}: {e}"))
    }

    /// kubectl as the admin; panics with its output when it fails.
    /// `wkjoin fetch --os windows` of v1.20.2 into `root` from the lab's mirror: the node archive and the CNI
    /// plugins release (win-bridge.exe, host-local.exe built from Debian's source by scripts/upstream/build).
    pub fn fetch_windows(&self, root: &std::path::Path) -> assert_cmd::Command {
        let mut c = crate::util::wkjoin();
        c.arg("fetch").arg("--root-dir").arg(root);
        c.args([
            "--os",
            "windows",
            "--node-name",
            "win-1",
            "--mirror",
            &self.mirror,
            "--kubernetes-version",
            "v1.20.2",
        ]);
        c.args(["--cni-plugins-mirror", &format!("{}/cni-plugins", self.mirror)]);
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.try_kubectl(args).unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
    }

    pub fn try_kubectl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=20s")
            .args(args)
            .output()
            .expect("run kubectl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A command run inside a node's network and mount namespaces (as `scripts/lab exec` does).
    pub fn command_in(&self, node: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/wkjlab-{node}"))
            .arg(format!("--mount={}", self.dir.join("ns").join(format!("{node}.mnt")).display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs a command inside a node and returns what it printed.
    pub fn exec(&self, node: &str, args: &[&str]) -> Output {
        self.command_in(node, args[0]).args(&args[1..]).output().expect("run nsenter")
    }

    /// The wkjoin binary under test, run inside a node with that node's containerd as the runtime.
    pub fn wkjoin_in(&self, node: &str) -> assert_cmd::Command {
        let bin = assert_cmd::cargo::cargo_bin("wkjoin");
        let mut cmd = assert_cmd::Command::from_std(self.command_in(node, bin));
        cmd.env_remove("KUBECONFIG").env("WKJOIN_LOG", "warn");
        for (key, _) in std::env::vars() {
            if key.starts_with("WKJOIN_") && key != "WKJOIN_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    /// The worker's node credential (CN=system:node:<worker>), minted once by `scripts/lab credential`.
    pub fn node_credential(&self, worker: &str) -> PathBuf {
        let out = Command::new(self.repo.join("scripts/lab")).args(["credential", worker]).output().expect("lab");
        assert!(out.status.success(), "scripts/lab credential {worker}: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    /// wkjoin's root dir on a worker, as `scripts/lab join` uses it.
    pub fn worker_root(&self, worker: &str) -> PathBuf {
        self.node_dir(worker).join("wkjoin")
    }

    /// The node's containerd socket, a path that works both from the root namespace and inside the node. A
    /// worker's containerd is Debian's stock one: inside the node it is /run/containerd/containerd.sock, and the
    /// node's /run is nodes/<worker>/host/run. The master's is the lab's own (nodes/master/containerd).
    pub fn containerd_socket(&self, node: &str) -> PathBuf {
        if node == "master" {
            self.node_dir(node).join("containerd/containerd.sock")
        } else {
            self.node_dir(node).join("host/run/containerd/containerd.sock")
        }
    }

    /// The node's address on the lab's external network (master .10, worker-N .10+N).
    pub fn node_ip(&self, node: &str) -> String {
        match node.strip_prefix("worker-") {
            Some(n) => format!("172.30.0.{}", 10 + n.parse::<u32>().expect("worker number")),
            None => "172.30.0.10".to_string(),
        }
    }
}

/// An exclusive claim on one lab node; released on drop.
pub struct NodeLock(#[allow(dead_code)] nix::fcntl::Flock<File>);
