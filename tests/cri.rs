//! The CRI client and the runtime facts against a real containerd (Debian's, started privately for each test in
//! a temp dir, killed when the test ends even on panic). Needs root and `containerd` + `ctr` on PATH: a missing
//! one fails the test, it is never skipped.
//!
//! `cargo test cri::record_fixtures -- --ignored` records tests/fixtures/cri/ again from the same containerd.
#![cfg(target_os = "linux")]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wkjoin::host::cri::{self, CriError, CriStatus};
use wkjoin::layout::Os;
use wkjoin::runtime::{self, Fact, Source};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest change to containerd's defaults that lets it run here (no CAP_SYS_RESOURCE: see
/// shared/reference/lab-facts.md); everything the tests look at is left at its default.
fn base_config(dir: &Path) -> String {
    format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\noom_score = 0\n\n[grpc]\n  address = \"{d}/containerd.sock\"\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n",
        d = dir.display()
    )
}

/// The base config with the CRI's CNI dirs and sandbox image set to values nobody uses by default.
fn unusual_config(dir: &Path) -> String {
    format!(
        "{}  sandbox_image = \"wkjoin.test/unusual/pause:7.7\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  \
         bin_dir = \"{d}/cni-bin\"\n  conf_dir = \"{d}/cni-conf\"\n  max_conf_num = 3\n",
        base_config(dir),
        d = dir.display()
    )
}

/// A private containerd; killed on drop.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    endpoint: String,
}

fn require_prerequisites() {
    // /proc/self/status: "Uid: real effective saved fs".
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|u| u.split_whitespace().nth(1));
    assert_eq!(euid, Some("0"), "these tests start containerd and must run as root");
    for tool in ["containerd", "ctr"] {
        let found = Command::new(tool).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
        assert!(found, "`{tool} --version` failed: install Debian's `containerd` package (apt-get install containerd)");
    }
}

impl Containerd {
    /// Starts containerd with `config(dir)` written to dir/config.toml, and waits until its CRI answers.
    async fn start(config: impl FnOnce(&Path) -> String) -> Containerd {
        Self::start_with(config, &[]).await
    }

    async fn start_with(config: impl FnOnce(&Path) -> String, flags: &[&str]) -> Containerd {
        require_prerequisites();
        let dir = tempfile::Builder::new().prefix("wkjoin-cri-").tempdir().expect("temp dir");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config(dir.path())).expect("write config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log file");
        let flags: Vec<String> = flags.iter().map(|f| f.replace("{dir}", &dir.path().display().to_string())).collect();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .args(&flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let endpoint = format!("unix://{}/containerd.sock", dir.path().display());
        let mut c = Containerd { child, dir, endpoint };
        c.wait_ready().await;
        c
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll containerd") {
                panic!("containerd exited with {status} before answering:\n{}", self.log());
            }
            match cri::status(&self.endpoint, Duration::from_secs(2)).await {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("containerd did not answer CRI Status within 30 s: {last}\n{}", self.log());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default()
    }

    async fn status(&self) -> CriStatus {
        cri::status(&self.endpoint, TIMEOUT).await.unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// containerd's own merged view of its config file (`containerd config dump`).
    fn config_dump(&self) -> String {
        let out = Command::new("containerd")
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["config", "dump"])
            .output()
            .expect("run containerd config dump");
        assert!(out.status.success(), "containerd config dump: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cri_fact(value: &str) -> Option<Fact<String>> {
    Some(Fact { value: value.to_string(), source: Source::Cri })
}

#[tokio::test]
async fn default_containerd_reports_its_defaults_over_cri() {
    let c = Containerd::start(base_config).await;
    let st = c.status().await;
    assert_eq!(st.version.runtime_name, "containerd");
    assert_eq!(st.version.runtime_api_version, "v1");
    assert!(st.info.contains_key("config"), "info keys: {:?}", st.info.keys().collect::<Vec<_>>());
    let info = runtime::from_status(&st).expect("facts");
    assert_eq!(info.version, st.version.runtime_version);
    assert_eq!(info.cni_conf_dir, cri_fact("/etc/cni/net.d"));
    assert_eq!(info.cni_bin_dir, cri_fact("/opt/cni/bin"));
    assert_eq!(info.sandbox_image, cri_fact("registry.k8s.io/pause:3.6"));
    assert_eq!(info.cni_max_conf_num, Some(1));
    let network = st.conditions.iter().find(|(t, _, _)| t == "NetworkReady").map(|(_, ok, _)| *ok);
    assert!(network.is_some(), "conditions: {:?}", st.conditions);
    assert_eq!(info.network_ready, network);

    // The defaults wkjoin assumes when neither the CRI nor a file says are the ones this containerd uses.
    let mut guessed = runtime::RuntimeInfo {
        cni_conf_dir: None,
        cni_bin_dir: None,
        sandbox_image: None,
        cni_max_conf_num: None,
        ..info.clone()
    };
    runtime::fill_from_config(&mut guessed, "/nonexistent/config.toml", None, Os::Linux).unwrap();
    let value = |f: &Option<Fact<String>>| f.as_ref().map(|f| (f.value.clone(), f.source.clone()));
    assert_eq!(value(&guessed.cni_conf_dir), Some(("/etc/cni/net.d".into(), Source::Default)));
    assert_eq!(value(&guessed.cni_bin_dir), Some(("/opt/cni/bin".into(), Source::Default)));
    assert_eq!(value(&guessed.sandbox_image), Some(("registry.k8s.io/pause:3.6".into(), Source::Default)));
    assert_eq!(guessed.cni_max_conf_num, Some(1));

    // And reading containerd's own dump of its merged config gives what it answered.
    let dump = c.config_dump();
    let mut from_dump =
        runtime::RuntimeInfo { cni_conf_dir: None, cni_bin_dir: None, sandbox_image: None, ..info.clone() };
    runtime::fill_from_config(&mut from_dump, "dump", Some(&dump), Os::Linux).unwrap();
    assert_eq!(from_dump.cni_conf_dir.map(|f| f.value), info.cni_conf_dir.map(|f| f.value));
    assert_eq!(from_dump.cni_bin_dir.map(|f| f.value), info.cni_bin_dir.map(|f| f.value));
    assert_eq!(from_dump.sandbox_image.map(|f| f.value), info.sandbox_image.map(|f| f.value));
}

#[tokio::test]
async fn unusual_dirs_and_sandbox_image_are_what_the_cri_reports() {
    let c = Containerd::start(unusual_config).await;
    let info = runtime::from_status(&c.status().await).expect("facts");
    assert_eq!(info.cni_conf_dir, cri_fact(&format!("{}/cni-conf", c.dir())));
    assert_eq!(info.cni_bin_dir, cri_fact(&format!("{}/cni-bin", c.dir())));
    assert_eq!(info.sandbox_image, cri_fact("wkjoin.test/unusual/pause:7.7"));
    assert_eq!(info.cni_max_conf_num, Some(3));

    // The config file alone gives the same facts.
    let text = std::fs::read_to_string(c.path("config.toml")).unwrap();
    let path = c.path("config.toml").display().to_string();
    let mut from_file = runtime::RuntimeInfo {
        cni_conf_dir: None,
        cni_bin_dir: None,
        sandbox_image: None,
        cni_max_conf_num: None,
        ..info.clone()
    };
    runtime::fill_from_config(&mut from_file, &path, Some(&text), Os::Linux).unwrap();
    let file = |v: String| Some(Fact { value: v, source: Source::ConfigFile(path.clone()) });
    assert_eq!(from_file.cni_conf_dir, file(format!("{}/cni-conf", c.dir())));
    assert_eq!(from_file.cni_bin_dir, file(format!("{}/cni-bin", c.dir())));
    assert_eq!(from_file.sandbox_image, file("wkjoin.test/unusual/pause:7.7".into()));
    assert_eq!(from_file.cni_max_conf_num, Some(3));
}

#[tokio::test]
async fn the_server_pid_is_containerd() {
    let c = Containerd::start(base_config).await;
    assert_eq!(cri::server_pid(&c.endpoint), Some(c.child.id()));
}

#[tokio::test]
async fn v1alpha2_is_used_when_v1_is_unimplemented() {
    let c = Containerd::start(base_config).await;
    let (v1, api) = cri::version_via(&c.endpoint, &["runtime.v1", "runtime.v1alpha2"], TIMEOUT).await.unwrap();
    assert_eq!(api, "runtime.v1");
    // A package containerd does not serve answers Unimplemented; the next one is asked.
    let (alpha, api) = cri::version_via(&c.endpoint, &["runtime.v0wkjoin", "runtime.v1alpha2"], TIMEOUT).await.unwrap();
    assert_eq!(api, "runtime.v1alpha2");
    assert_eq!(alpha.runtime_version, v1.runtime_version);
    assert_eq!(alpha.runtime_api_version, "v1alpha2");
    // None served: the error names the method and the fix.
    let err = cri::version_via(&c.endpoint, &["runtime.v0wkjoin"], TIMEOUT).await.unwrap_err();
    let CriError::Call { method, message, .. } = &err else { panic!("{err:?}") };
    assert_eq!(method, "/runtime.v0wkjoin.RuntimeService/Version");
    assert!(message.starts_with("Unimplemented"), "{message}");
    assert!(err.to_string().contains("disabled_plugins"), "{err}");
}

/// An OCI image layout tar holding one tiny image named `name`; returns (tar, config digest).
fn oci_image_tar(name: &str) -> (Vec<u8>, String) {
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *data).expect("tar entry");
        }
        b.into_inner().expect("tar")
    }
    let digest = |data: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(data)));
    let layer = tar_of(&[("etc/wkjoin-cri-test", b"a layer for tests/cri.rs\n")]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/nothing"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest),
                       "size": manifest.len(), "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": name}}],
    })
    .to_string()
    .into_bytes();
    let blob = |d: String| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let (lp, cp, mp) = (blob(digest(&layer)), blob(digest(&config)), blob(digest(&manifest)));
    let tar = tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&lp, &layer),
        (&cp, &config),
        (&mp, &manifest),
    ]);
    (tar, digest(&config))
}

#[tokio::test]
async fn image_id_answers_none_then_the_imported_image() {
    let c = Containerd::start(base_config).await;
    let image = "wkjoin.test/cri-probe:1.0";
    assert_eq!(cri::image_id(&c.endpoint, image, TIMEOUT).await.unwrap(), None);

    let (tar, config_digest) = oci_image_tar(image);
    let tar_path = c.path("image.oci.tar");
    std::fs::write(&tar_path, tar).unwrap();
    let sock = c.path("containerd.sock");
    let out = Command::new("ctr")
        .arg("-a")
        .arg(&sock)
        .args(["-n", "k8s.io", "images", "import"])
        .arg(&tar_path)
        .output()
        .expect("run ctr");
    assert!(out.status.success(), "ctr images import: {}\n{}", String::from_utf8_lossy(&out.stderr), c.log());

    // The CRI plugin learns of the import from containerd's events: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        match cri::image_id(&c.endpoint, image, TIMEOUT).await.unwrap() {
            Some(id) => break id,
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            None => panic!("{image} imported but the CRI does not see it\n{}", c.log()),
        }
    };
    assert_eq!(id, config_digest);
    // Another name is still missing.
    assert_eq!(cri::image_id(&c.endpoint, "wkjoin.test/cri-probe:2.0", TIMEOUT).await.unwrap(), None);
}

#[tokio::test]
async fn set_sandbox_image_is_accepted_by_containerd_and_keeps_the_rest() {
    // A file with custom CNI dirs and no sandbox image: the key is added.
    let image = "wkjoin.test/pause-from-wkjoin:1.0";
    let c = Containerd::start(|dir| {
        let original = unusual_config(dir).replace("  sandbox_image = \"wkjoin.test/unusual/pause:7.7\"\n", "");
        let edited = runtime::set_sandbox_image(Some(&original), image, 1).expect("edit");
        // One line added at the end of the CRI table, indented like its neighbour; nothing else changed.
        let added = format!("  sandbox_image = \"{image}\"\n");
        let at =
            original.find("  restrict_oom_score_adj = true\n").unwrap() + "  restrict_oom_score_adj = true\n".len();
        assert_eq!(edited, format!("{}{added}{}", &original[..at], &original[at..]));
        edited
    })
    .await;
    let info = runtime::from_status(&c.status().await).unwrap();
    assert_eq!(info.sandbox_image, cri_fact(image));
    assert_eq!(info.cni_conf_dir, cri_fact(&format!("{}/cni-conf", c.dir())));
    assert_eq!(info.cni_bin_dir, cri_fact(&format!("{}/cni-bin", c.dir())));
    assert_eq!(info.cni_max_conf_num, Some(3));
    drop(c);

    // A file that sets one already: the value is replaced, every other byte stays.
    let c = Containerd::start(|dir| {
        let original = unusual_config(dir);
        let edited = runtime::set_sandbox_image(Some(&original), image, 1).expect("edit");
        assert_eq!(edited, original.replace("wkjoin.test/unusual/pause:7.7", image));
        edited
    })
    .await;
    let info = runtime::from_status(&c.status().await).unwrap();
    assert_eq!(info.sandbox_image, cri_fact(image));
    assert_eq!(info.cni_conf_dir, cri_fact(&format!("{}/cni-conf", c.dir())));
    drop(c);

    // No file yet: the minimal file (root, state and socket come from flags) is read as such.
    let c = Containerd::start_with(
        |_| runtime::set_sandbox_image(None, image, 1).expect("new file"),
        &["--root", "{dir}/root", "--state", "{dir}/state", "--address", "{dir}/containerd.sock"],
    )
    .await;
    let info = runtime::from_status(&c.status().await).unwrap();
    assert_eq!(info.sandbox_image, cri_fact(image));
    assert_eq!(info.cni_conf_dir, cri_fact("/etc/cni/net.d"));
}

/// Records tests/fixtures/cri/*.json from this machine's containerd (see tests/fixtures/cri/README.md).
#[tokio::test]
#[ignore = "rewrites tests/fixtures/cri; run by hand"]
async fn record_fixtures() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cri");
    // A fixed directory, so the recorded paths do not change from one recording to the next.
    for (name, config) in [
        ("containerd-1.6-linux.json", base_config as fn(&Path) -> String),
        ("containerd-1.6-linux-unusual.json", unusual_config),
    ] {
        let c = Containerd::start(config).await;
        let st = c.status().await;
        let config_text = std::fs::read_to_string(c.path("config.toml")).unwrap();
        let tmp = c.dir();
        let fixture = serde_json::json!({
            "recorded": format!(
                "CRI Version and Status(verbose) from `containerd --config config.toml` ({}), root/state/socket in a temp dir shown as /TMP",
                st.version.runtime_version
            ),
            "config_toml": config_text.replace(&tmp, "/TMP"),
            "version": {
                "runtime_name": st.version.runtime_name,
                "runtime_version": st.version.runtime_version,
                "runtime_api_version": st.version.runtime_api_version,
            },
            "conditions": st.conditions.iter().map(|(t, s, m)| serde_json::json!([t, s, m])).collect::<Vec<_>>(),
            "info": st.info.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.replace(&tmp, "/TMP")))).collect::<serde_json::Map<_, _>>(),
        });
        std::fs::write(out.join(name), serde_json::to_string_pretty(&fixture).unwrap() + "\n").unwrap();
    }
}
