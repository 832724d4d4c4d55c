use super::*;
use crate::host::cri::{CriStatus, CriVersion};
use crate::layout::Os;

/// A recorded answer from tests/fixtures/cri (see its README).
fn fixture(json: &str) -> CriStatus {
    let v: serde_json::Value = serde_json::from_str(json).expect("fixture is JSON");
    let s = |v: &serde_json::Value| v.as_str().expect("string").to_string();
    CriStatus {
        version: CriVersion {
            runtime_name: s(&v["version"]["runtime_name"]),
            runtime_version: s(&v["version"]["runtime_version"]),
            runtime_api_version: s(&v["version"]["runtime_api_version"]),
        },
        info: v["info"].as_object().expect("info").iter().map(|(k, v)| (k.clone(), s(v))).collect(),
        conditions: v["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .map(|c| (s(&c[0]), c[1].as_bool().expect("bool"), s(&c[2])))
            .collect(),
    }
}

const LINUX: &str = include_str!("../../tests/fixtures/cri/containerd-1.6-linux.json");
const UNUSUAL: &str = include_str!("../../tests/fixtures/cri/containerd-1.6-linux-unusual.json");
const WINDOWS: &str = include_str!("../../tests/fixtures/cri/containerd-1.6-windows.derived.json");

fn cri(v: &str) -> Option<Fact<String>> {
    Some(Fact::new(v.to_string(), Source::Cri))
}

fn file(v: &str, path: &str) -> Option<Fact<String>> {
    Some(Fact::new(v.to_string(), Source::ConfigFile(path.to_string())))
}

fn default(v: &str) -> Option<Fact<String>> {
    Some(Fact::new(v.to_string(), Source::Default))
}

fn status(name: &str, version: &str, info: &[(&str, &str)]) -> CriStatus {
    CriStatus {
        version: CriVersion {
            runtime_name: name.into(),
            runtime_version: version.into(),
            runtime_api_version: "v1".into(),
        },
        info: info.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        conditions: vec![("RuntimeReady".into(), true, String::new()), ("NetworkReady".into(), true, String::new())],
    }
}

#[test]
fn recorded_containerd_1_6_defaults() {
    let info = from_status(&fixture(LINUX)).unwrap();
    assert_eq!(
        info,
        RuntimeInfo {
            name: "containerd".into(),
            version: "1.6.20~ds1".into(),
            api_version: "v1".into(),
            cni_conf_dir: cri("/etc/cni/net.d"),
            cni_bin_dir: cri("/opt/cni/bin"),
            sandbox_image: cri("registry.k8s.io/pause:3.6"),
            cni_max_conf_num: Some(1),
            network_ready: Some(false),
        }
    );
    assert_eq!(info.version_triple(), Some((1, 6, 20)));
}

#[test]
fn recorded_containerd_1_6_unusual_values() {
    let info = from_status(&fixture(UNUSUAL)).unwrap();
    assert_eq!(info.cni_conf_dir, cri("/TMP/cni-conf"));
    assert_eq!(info.cni_bin_dir, cri("/TMP/cni-bin"));
    assert_eq!(info.sandbox_image, cri("wkjoin.test/unusual/pause:7.7"));
    assert_eq!(info.cni_max_conf_num, Some(3));
}

#[test]
fn derived_windows_answer() {
    let info = from_status(&fixture(WINDOWS)).unwrap();
    assert_eq!(info.cni_conf_dir, cri(r"C:\Program Files\containerd\cni\conf"));
    assert_eq!(info.cni_bin_dir, cri(r"C:\Program Files\containerd\cni\bin"));
    assert_eq!(info.sandbox_image, cri("registry.k8s.io/pause:3.6"));
}

#[test]
fn cri_facts_win_over_the_file() {
    let mut info = from_status(&fixture(UNUSUAL)).unwrap();
    let before = info.clone();
    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"other:1\"\n";
    fill_from_config(&mut info, "/etc/containerd/config.toml", Some(text), Os::Linux).unwrap();
    assert_eq!(info, before);
}

#[test]
fn a_status_without_config_leaves_the_facts_to_the_fallback() {
    // CRI-O and cri-dockerd answer Status without containerd's `config`.
    let st = status("cri-o", "1.29.1", &[("golang", "\"go1.21\"")]);
    let info = from_status(&st).unwrap();
    assert_eq!((info.cni_conf_dir, info.cni_bin_dir, info.sandbox_image), (None, None, None));
    assert_eq!(info.cni_max_conf_num, None);
    assert_eq!(info.network_ready, Some(true));

    // containerd not asked verbosely (or a proxy dropping info): the file, then the defaults, fill in.
    let mut info = from_status(&status("containerd", "v1.7.2", &[])).unwrap();
    assert_eq!(info.sandbox_image, None);
    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nconf_dir = \"/etc/cni/custom\"\n";
    fill_from_config(&mut info, "/etc/containerd/config.toml", Some(text), Os::Linux).unwrap();
    assert_eq!(info.cni_conf_dir, file("/etc/cni/custom", "/etc/containerd/config.toml"));
    assert_eq!(info.cni_bin_dir, default("/opt/cni/bin"));
    assert_eq!(info.sandbox_image, default("registry.k8s.io/pause:3.8"));
    assert_eq!(info.cni_max_conf_num, Some(1));
    assert_eq!(info.cni_conf_dir.unwrap().source.to_string(), "config file /etc/containerd/config.toml");
    assert_eq!(info.cni_bin_dir.unwrap().source.to_string(), "runtime default");
}

#[test]
fn no_containerd_defaults_for_another_runtime() {
    let mut info = from_status(&status("cri-o", "1.29.1", &[])).unwrap();
    fill_from_config(&mut info, "/etc/containerd/config.toml", None, Os::Linux).unwrap();
    assert_eq!((info.cni_conf_dir, info.cni_bin_dir, info.sandbox_image), (None, None, None));
}

#[test]
fn a_config_that_is_not_json_is_an_error() {
    let err = from_status(&status("containerd", "v1.6.0", &[("config", "{not json")])).unwrap_err();
    assert!(matches!(&err, RuntimeError::StatusJson { key, .. } if key == "config"), "{err:?}");
    assert!(err.to_string().contains("containerd v1.6.0"), "{err}");
}

/// containerd 2.1+'s `config` (from `internal/cri/config` struct tags: no image config, `binDirs`).
#[test]
fn containerd_2_reports_dirs_but_not_the_sandbox_image() {
    let config = r#"{"containerd":{"defaultRuntimeName":"runc"},"cni":{"binDir":"","binDirs":["/usr/lib/cni","/opt/cni/bin"],"confDir":"/etc/cni/net.d","maxConfNum":1,"setupSerially":false},"enableCDI":true,"containerdRootDir":"/var/lib/containerd","containerdEndpoint":"/run/containerd/containerd.sock","rootDir":"/var/lib/containerd/io.containerd.grpc.v1.cri","stateDir":"/run/containerd/io.containerd.grpc.v1.cri"}"#;
    let mut info = from_status(&status("containerd", "v2.1.4", &[("config", config)])).unwrap();
    assert_eq!(info.cni_bin_dir, cri("/usr/lib/cni"));
    assert_eq!(info.cni_conf_dir, cri("/etc/cni/net.d"));
    assert_eq!(info.sandbox_image, None);
    let path = "/etc/containerd/config.toml";
    let text = "version = 3\n\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.example/pause:3.10'\n";
    fill_from_config(&mut info, path, Some(text), Os::Linux).unwrap();
    assert_eq!(info.sandbox_image, file("registry.example/pause:3.10", path));

    // containerd 2.0: `binDir` still a string; the file does not set the image: the default.
    let config = r#"{"cni":{"binDir":"/opt/cni/bin","confDir":"/etc/cni/net.d","maxConfNum":1}}"#;
    let mut info = from_status(&status("containerd", "v2.0.0", &[("config", config)])).unwrap();
    assert_eq!(info.cni_bin_dir, cri("/opt/cni/bin"));
    fill_from_config(&mut info, path, Some("version = 3\n"), Os::Linux).unwrap();
    assert_eq!(info.sandbox_image, default("registry.k8s.io/pause:3.10"));
}

#[test]
fn config_file_versions() {
    let path = "/etc/containerd/config.toml";
    let blank = || {
        let mut info = from_status(&status("containerd", "1.6.20~ds1", &[])).unwrap();
        info.network_ready = None;
        info
    };
    for text in [
        // version 1 (no `version` key)
        "[plugins.cri]\nsandbox_image = \"a/pause:1\"\n[plugins.cri.cni]\nbin_dir = \"/b\"\nconf_dir = \"/c\"\nmax_conf_num = 0\n",
        // version 2, dotted keys
        "version = 2\n[plugins]\n\"io.containerd.grpc.v1.cri\".sandbox_image = \"a/pause:1\"\n\"io.containerd.grpc.v1.cri\".cni.bin_dir = \"/b\"\n\"io.containerd.grpc.v1.cri\".cni.conf_dir = \"/c\"\n\"io.containerd.grpc.v1.cri\".cni.max_conf_num = 0\n",
        // version 3, bin_dirs
        "version = 3\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\nsandbox = 'a/pause:1'\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/b', '/d']\nconf_dir = '/c'\nmax_conf_num = 0\n",
        // version 3, bin_dir (2.0)
        "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\npinned_images = { sandbox = \"a/pause:1\" }\n[plugins.\"io.containerd.cri.v1.runtime\".cni]\nbin_dir = \"/b\"\nconf_dir = \"/c\"\nmax_conf_num = 0\n",
    ] {
        let mut info = blank();
        fill_from_config(&mut info, path, Some(text), Os::Linux).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(info.sandbox_image, file("a/pause:1", path), "{text}");
        assert_eq!(info.cni_bin_dir, file("/b", path), "{text}");
        assert_eq!(info.cni_conf_dir, file("/c", path), "{text}");
        assert_eq!(info.cni_max_conf_num, Some(0), "{text}");
    }
    // A version 2 file's keys are not read as version 3's, nor the other way round.
    let mut info = blank();
    fill_from_config(
        &mut info,
        path,
        Some("version = 3\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"x\"\n"),
        Os::Linux,
    )
    .unwrap();
    assert_eq!(info.sandbox_image, default("registry.k8s.io/pause:3.6"));
}

#[test]
fn defaults_per_os_and_version() {
    let defaults = |os: Os, version: &str| {
        let mut info = from_status(&status("containerd", version, &[])).unwrap();
        fill_from_config(&mut info, "C:\\Program Files\\containerd\\config.toml", None, os).unwrap();
        (
            info.cni_conf_dir.map(|f| f.value),
            info.cni_bin_dir.map(|f| f.value),
            info.sandbox_image.map(|f| f.value),
            info.cni_max_conf_num,
        )
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        defaults(Os::Windows, "v1.6.20"),
        (
            s(r"C:\Program Files\containerd\cni\conf"),
            s(r"C:\Program Files\containerd\cni\bin"),
            s("registry.k8s.io/pause:3.6"),
            Some(1)
        )
    );
    assert_eq!(
        defaults(Os::Linux, "1.6.20~ds1"),
        (s("/etc/cni/net.d"), s("/opt/cni/bin"), s("registry.k8s.io/pause:3.6"), Some(1))
    );
    for (version, image) in [
        ("v1.5.2", Some("k8s.gcr.io/pause:3.5")),
        ("v1.5.18", Some("registry.k8s.io/pause:3.5")),
        ("v1.6.4", Some("k8s.gcr.io/pause:3.6")),
        ("v1.6.9", Some("registry.k8s.io/pause:3.6")),
        ("v1.7.27", Some("registry.k8s.io/pause:3.8")),
        ("v2.0.5", Some("registry.k8s.io/pause:3.10")),
        ("v2.1.4", Some("registry.k8s.io/pause:3.10")),
        ("2.2.0-rc.1", Some("registry.k8s.io/pause:3.10.1")),
        ("v2.3.1", Some("registry.k8s.io/pause:3.10.2")),
        ("v1.4.13", None),
        ("", None),
        ("abc", None),
    ] {
        assert_eq!(defaults(Os::Linux, version).2.as_deref(), image, "{version}");
    }
}

#[test]
fn unreadable_config_files_are_errors_that_name_the_file() {
    let mut info = from_status(&status("containerd", "v1.7.0", &[])).unwrap();
    let path = "/etc/containerd/config.toml";
    let err = fill_from_config(&mut info, path, Some("version = 2\n[plugins\n"), Os::Linux).unwrap_err();
    assert!(matches!(&err, RuntimeError::ConfigToml { file, .. } if file == path), "{err:?}");
    assert!(err.to_string().starts_with("/etc/containerd/config.toml is not valid TOML: line 2: "), "{err}");

    let err = fill_from_config(&mut info, path, Some("version = 4\n"), Os::Linux).unwrap_err();
    assert!(matches!(err, RuntimeError::ConfigVersion { version: 4, .. }), "{err:?}");

    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = 3\n";
    let err = fill_from_config(&mut info, path, Some(text), Os::Linux).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/containerd/config.toml: `plugins.io.containerd.grpc.v1.cri.sandbox_image` is an integer (3), where containerd expects a string (fix the file)"
    );
}

/// What containerd would read back from an edited file.
fn sandbox_of(text: &str, version: &str) -> Option<Fact<String>> {
    let mut info = from_status(&status("containerd", version, &[])).unwrap();
    fill_from_config(&mut info, "f", Some(text), Os::Linux).unwrap();
    info.sandbox_image
}

#[test]
fn set_sandbox_image_replaces_the_value_only() {
    let text = "# wkjoin test\nversion = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    sandbox_image   =  \"registry.k8s.io/pause:3.6\"  # the default\n    restrict_oom_score_adj = true\n";
    let out = set_sandbox_image(Some(text), "wkjoin.local/pause:1.0", 1).unwrap();
    assert_eq!(out, text.replace("registry.k8s.io/pause:3.6", "wkjoin.local/pause:1.0"));

    let v3 = "version = 3\n\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.k8s.io/pause:3.10'\n";
    let out = set_sandbox_image(Some(v3), "wkjoin.local/pause:1.0", 2).unwrap();
    assert_eq!(out, v3.replace("'registry.k8s.io/pause:3.10'", "\"wkjoin.local/pause:1.0\""));
}

#[test]
fn set_sandbox_image_adds_the_key_where_containerd_reads_it() {
    let image = "wkjoin.local/pause:1.0";
    for (text, major) in [
        // The CRI table exists: a line at its end, indented like its neighbour.
        (
            "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_selinux = false\n\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  conf_dir = \"/c\"\n",
            1,
        ),
        // Only a sub-table exists.
        ("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nconf_dir = \"/c\"\n", 1),
        // No plugins at all.
        ("version = 2\nroot = \"/var/lib/containerd\"\n", 1),
        // Inline tables.
        ("version = 2\nplugins = { \"io.containerd.grpc.v1.cri\" = { cni = { conf_dir = \"/c\" } } }\n", 1),
        // Version 1 (also read by containerd 2.x, which migrates it).
        ("[plugins.cri.cni]\nconf_dir = \"/c\"\n", 2),
        // Version 3: the images plugin's pinned_images.
        ("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nconf_dir = '/c'\n", 2),
        ("version = 3\n[plugins.'io.containerd.cri.v1.images']\nmax_concurrent_downloads = 3\n", 2),
    ] {
        let out = set_sandbox_image(Some(text), image, major).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let version = if major >= 2 { "v2.1.0" } else { "v1.7.0" };
        assert_eq!(sandbox_of(&out, version), file(image, "f"), "{out}");
        // Nothing before the insertion point changed, and the other facts read the same.
        let mut before = from_status(&status("containerd", version, &[])).unwrap();
        let mut after = before.clone();
        fill_from_config(&mut before, "f", Some(text), Os::Linux).unwrap();
        fill_from_config(&mut after, "f", Some(&out), Os::Linux).unwrap();
        assert_eq!((before.cni_conf_dir, before.cni_bin_dir), (after.cni_conf_dir, after.cni_bin_dir), "{out}");
        assert!(!out.contains("\n[plugins]\n"), "no empty [plugins] header:\n{out}");
    }
    let out = set_sandbox_image(
        Some("version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_selinux = false\n"),
        image,
        1,
    )
    .unwrap();
    assert_eq!(
        out,
        "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_selinux = false\n  sandbox_image = \"wkjoin.local/pause:1.0\"\n"
    );
}

#[test]
fn set_sandbox_image_without_a_file() {
    let out = set_sandbox_image(None, "wkjoin.local/pause:1.0", 1).unwrap();
    assert_eq!(
        out,
        "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"wkjoin.local/pause:1.0\"\n"
    );
    let out = set_sandbox_image(None, "wkjoin.local/pause:1.0", 2).unwrap();
    assert_eq!(
        out,
        "version = 3\n\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\nsandbox = \"wkjoin.local/pause:1.0\"\n"
    );
    assert_eq!(sandbox_of(&out, "v2.0.0"), file("wkjoin.local/pause:1.0", "f"));
}

#[test]
fn set_sandbox_image_refuses_what_containerd_would() {
    let err = set_sandbox_image(Some("version = 3\n"), "p:1", 1).unwrap_err();
    assert!(matches!(err, RuntimeError::ConfigTooNew { runtime_major: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("containerd 1.x cannot read"), "{err}");

    let err = set_sandbox_image(Some("version = 2\nplugins = 3\n"), "p:1", 1).unwrap_err();
    assert!(matches!(&err, RuntimeError::ConfigShape { key, .. } if key == "plugins"), "{err:?}");

    let err = set_sandbox_image(Some("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".sandbox_image]\n"), "p:1", 1)
        .unwrap_err();
    assert!(matches!(&err, RuntimeError::ConfigShape { .. }), "{err:?}");

    let err = set_sandbox_image(Some("version = \"2\"\n"), "p:1", 1).unwrap_err();
    assert!(matches!(&err, RuntimeError::ConfigShape { key, .. } if key == "version"), "{err:?}");

    let err = set_sandbox_image(Some("[plugins\n"), "p:1", 1).unwrap_err();
    assert!(matches!(err, RuntimeError::ConfigToml { .. }), "{err:?}");
}

#[test]
fn serialises_with_its_source() {
    let info = from_status(&fixture(LINUX)).unwrap();
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["cni_conf_dir"], serde_json::json!({"value": "/etc/cni/net.d", "source": "Cri"}));
    let f = Fact::new("x".to_string(), Source::ConfigFile("/etc/containerd/config.toml".into()));
    assert_eq!(
        serde_json::to_value(&f).unwrap(),
        serde_json::json!({"value": "x", "source": {"ConfigFile": "/etc/containerd/config.toml"}})
    );
}
