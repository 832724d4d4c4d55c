//! `wkjoin config`: bad input is refused with the fix and nothing written; against the lab, minted node
//! credentials pass every check, the admin's are warned about, and broken ones fail the right check.

use crate::util::{failure_of, stdout_of, tree, wkjoin};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn malformed_yaml_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "bad.yaml", "clusters: [\n  - name: x\n");
    let (code, err) =
        failure_of(wkjoin().args(["config", "--node-name", "n", "--from", &src, "--root-dir"]).arg(root.path()));
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with(&format!("error: kubeconfig {src} is not valid YAML: ")), "{err}");
    assert!(err.trim_end().ends_with("(fix the file, or export it again)"), "{err}");
    assert!(tree(root.path()).is_empty());
}

#[test]
fn missing_context_names_the_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "k.yaml",
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: a, context: {cluster: c, user: u}}]
current-context: a
",
    );
    let (code, err) = failure_of(
        wkjoin().args(["config", "--node-name", "n", "--context", "b", "--from", &src, "--root-dir"]).arg(root.path()),
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        format!("error: kubeconfig {src} has no context named `b` (it has: a); pick one with --context")
    );
    assert!(tree(root.path()).is_empty());
}

#[test]
fn exec_plugin_and_unreachable_server_fail_their_checks_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ca = rcgen::CertificateParams::new(vec!["ca".to_string()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem();
    use base64::Engine;
    let ca64 = base64::engine::general_purpose::STANDARD.encode(ca);
    let src = write(
        dir.path(),
        "k.yaml",
        &format!(
            "clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', certificate-authority-data: {ca64}}}}}]
users: [{{name: u, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1beta1, command: aws}}}}}}]
contexts: [{{name: a, context: {{cluster: c, user: u}}}}]
current-context: a
"
        ),
    );
    let out = wkjoin()
        .args(["config", "--node-name", "n", "-o", "json", "--from", &src, "--root-dir"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |name: &str| report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(check("credentials")["status"], "fail");
    assert!(check("credentials")["message"].as_str().unwrap().starts_with("exec plugin `aws`"));
    assert_eq!(check("tls")["status"], "fail");
    assert!(
        check("tls")["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cannot reach the API server at 127.0.0.1:{port}")),
        "{}",
        check("tls")
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let target = wkjoin::layout::Layout::new(wkjoin::layout::Os::host(), root.path().to_string_lossy()).kubeconfig();
    assert!(err.contains(&format!("nothing was written to {target}")), "{err}");
    assert!(tree(root.path()).is_empty());
}

#[test]
fn dry_run_never_shows_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "k.yaml", "users: [{name: u, user: {token: s3cret-token}}]\n");
    let out = stdout_of(wkjoin().args([
        "config",
        "--dry-run",
        "--os",
        "linux",
        "--node-name",
        "n",
        "--root-dir",
        "/r",
        "--from",
        &src,
    ]));
    assert!(out.contains(&format!("write /r/config (owner-only access) with the credentials from {src}")), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
}

#[test]
fn no_source_is_a_usage_error() {
    let root = tempfile::tempdir().unwrap();
    let (code, err) = failure_of(wkjoin().args(["config", "--node-name", "n", "--root-dir"]).arg(root.path()));
    assert_eq!(code, 2);
    assert!(err.contains("no kubeconfig to install: give it with --from FILE"), "{err}");
}

#[test]
fn malformed_bootstrap_token_is_refused_without_repeating_it() {
    let root = tempfile::tempdir().unwrap();
    let (code, err) = failure_of(
        wkjoin()
            .args(["config", "--node-name", "n", "--token", "abcdef.s3cr3tTooShort", "--server"])
            .args(["https://127.0.0.1:1", "--ca-file", "/nonexistent/ca.crt", "--root-dir"])
            .arg(root.path()),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with(
            "error: the bootstrap token given with --token is malformed: its secret (after the '.') has 14 characters, \
             not 16 (it must look like `abcdef.0123456789abcdef`"
        ),
        "{err}"
    );
    assert!(!err.contains("s3cr3t"), "{err}");
    assert!(tree(root.path()).is_empty());
}

#[test]
fn token_dry_run_names_the_source_never_the_secret() {
    let out = stdout_of(wkjoin().args([
        "config",
        "--dry-run",
        // A Linux plan (root /r) on any host: under wine the host's own plan would want a drive letter.
        "--os",
        "linux",
        "--node-name",
        "n",
        "--root-dir",
        "/r",
        "--token",
        "abcdef.0123456789abcdef",
        "--server",
        "https://10.0.0.1:6443",
        "--ca-file",
        "/ca.crt",
    ]));
    assert!(
        out.contains("write /r/config (owner-only access) with the credentials from a CSR at https://10.0.0.1:6443 with bootstrap token abcdef"),
        "{out}"
    );
    assert!(!out.contains("0123456789abcdef"), "{out}");
}

#[test]
fn token_needs_server_and_a_ca() {
    let (code, err) = failure_of(wkjoin().args(["config", "--node-name", "n", "--token", "abcdef.0123456789abcdef"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--server <URL>"), "{err}");
    let root = tempfile::tempdir().unwrap();
    let (code, err) = failure_of(
        wkjoin()
            .args(["config", "--node-name", "n", "--token", "abcdef.0123456789abcdef"])
            .args(["--server", "https://127.0.0.1:1", "--root-dir"])
            .arg(root.path()),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: --token needs the cluster CA: give --ca-file FILE"), "{err}");
    let (code, err) = failure_of(
        wkjoin()
            .args(["config", "--node-name", "n", "--token", "abcdef.0123456789abcdef"])
            .args(["--server", "https://127.0.0.1:1", "--discovery-token-ca-cert-hash", "sha256:abc", "--root-dir"])
            .arg(root.path()),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: --discovery-token-ca-cert-hash `sha256:abc` is not of the form"), "{err}");
    assert!(tree(root.path()).is_empty());
}

#[cfg(target_os = "linux")]
mod lab {
    use super::write;
    use crate::util::lab::Lab;
    use crate::util::{stdout_of, tree, wkjoin};
    use base64::Engine;
    use serde_json::Value;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// `wkjoin config mint` with the lab's admin kubeconfig; returns the node kubeconfig it wrote.
    fn mint(lab: &Lab, node: &str, dir: &Path) -> PathBuf {
        let out = dir.join(format!("{node}.kubeconfig"));
        let text = stdout_of(
            wkjoin()
                .arg("--kubeconfig")
                .arg(&lab.kubeconfig)
                .args(["config", "mint", "--node-name", node, "--timeout", "60s", "--out"])
                .arg(&out),
        );
        assert!(text.contains(&format!("CN=system:node:{node}, O=system:nodes")), "{text}");
        out
    }

    /// `wkjoin config check -o json`: (exit code, report).
    fn check(kubeconfig: &Path, node: &str) -> (i32, Value) {
        let out = wkjoin()
            .args(["config", "check", "-o", "json", "--kubernetes-version", "v1.20.2", "--node-name", node, "--from"])
            .arg(kubeconfig)
            .output()
            .unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: stdout {} stderr {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), report)
    }

    fn find(report: &Value, name: &str) -> (String, String) {
        let c = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| {
            panic!("no check {name} in {report:#}");
        });
        (c["status"].as_str().unwrap().to_string(), c["message"].as_str().unwrap().to_string())
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_minted_node_credential_is_least_privilege() {
        let lab = Lab::get();
        let dir = tempfile::tempdir().unwrap();
        let kc = mint(lab, "worker-2", dir.path());
        assert_eq!(std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777, 0o600);
        let (code, report) = check(&kc, "worker-2");
        for name in ["kubeconfig", "server", "ca", "credentials", "client-certificate", "identity", "tls", "api"] {
            assert_eq!(find(&report, name).0, "pass", "{name}: {report:#}");
        }
        assert_eq!(find(&report, "version-skew").0, "pass", "{report:#}");
        assert_eq!(find(&report, "node-access").0, "pass", "{report:#}");
        let (status, message) = find(&report, "least-privilege");
        assert_eq!(status, "pass", "{message}: {report:#}");
        assert!(message.contains("nor modify node "), "{message}");
        assert_eq!(code, 0, "{report:#}");
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_admin_credential_is_flagged_as_too_privileged() {
        let lab = Lab::get();
        let (code, report) = check(&lab.kubeconfig, "worker-2");
        assert_eq!(code, 0, "warnings do not fail: {report:#}");
        let (status, message) = find(&report, "identity");
        assert_eq!(status, "warn");
        assert!(message.contains("O=system:masters: cluster-admin credentials"), "{message}");
        let (status, message) = find(&report, "least-privilege");
        assert_eq!(status, "warn");
        assert!(message.contains("(cluster-admin): too privileged for a node"), "{message}");
    }

    /// The minted kubeconfig with one field replaced.
    fn edited(src: &Path, dir: &Path, name: &str, field: &str, value: &str) -> PathBuf {
        let text = std::fs::read_to_string(src).unwrap();
        let out: Vec<String> = text
            .lines()
            .map(|l| match l.split_once(&format!("{field}: ")) {
                Some((indent, _)) => format!("{indent}{field}: {value}"),
                None => l.to_string(),
            })
            .collect();
        PathBuf::from(write(dir, name, &(out.join("\n") + "\n")))
    }

    fn b64(d: impl AsRef<[u8]>) -> String {
        base64::engine::general_purpose::STANDARD.encode(d)
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_wrong_ca_fails_the_tls_check_and_installs_nothing() {
        let lab = Lab::get();
        let dir = tempfile::tempdir().unwrap();
        let kc = mint(lab, "worker-2", dir.path());
        let other_ca = rcgen::CertificateParams::new(vec!["not-the-cluster-ca".to_string()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let bad = edited(&kc, dir.path(), "wrong-ca", "certificate-authority-data", &b64(other_ca));
        let (code, report) = check(&bad, "worker-2");
        assert_eq!(code, 3);
        let (status, message) = find(&report, "tls");
        assert_eq!(status, "fail");
        assert!(message.ends_with("is not signed by the kubeconfig's CA: wrong CA"), "{message}");
        assert_eq!(find(&report, "api").0, "skip");

        let root = tempfile::tempdir().unwrap();
        let out = wkjoin()
            .args(["config", "--node-name", "worker-2", "--from"])
            .arg(&bad)
            .arg("--root-dir")
            .arg(root.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(tree(root.path()).is_empty());
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_other_nodes_credential_fails_the_identity_check() {
        let lab = Lab::get();
        let dir = tempfile::tempdir().unwrap();
        let kc = mint(lab, "worker-2", dir.path());
        let (code, report) = check(&kc, "worker-1");
        assert_eq!(code, 3);
        let (status, message) = find(&report, "identity");
        assert_eq!(status, "fail");
        assert!(message.contains("this is node worker-2's credential, but this node is worker-1"), "{message}");
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_expired_certificate_fails() {
        let lab = Lab::get();
        let dir = tempfile::tempdir().unwrap();
        let kc = mint(lab, "worker-2", dir.path());
        let pki = lab.dir.join("pki");
        let ca_pem = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
        let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).unwrap()).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
        p.distinguished_name.push(rcgen::DnType::CommonName, "system:node:worker-2");
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap().pem();
        let with_cert = edited(&kc, dir.path(), "expired-1", "client-certificate-data", &b64(cert));
        let bad = edited(&with_cert, dir.path(), "expired", "client-key-data", &b64(key.serialize_pem()));
        let (code, report) = check(&bad, "worker-2");
        assert_eq!(code, 3);
        assert_eq!(
            find(&report, "client-certificate"),
            ("fail".to_string(), "expired at 2021-01-01T00:00:00Z".to_string())
        );
        let (status, message) = find(&report, "api");
        assert_eq!(status, "fail");
        assert!(message.ends_with("the API server rejected the credentials (401 Unauthorized)"), "{message}");
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_install_is_owner_only_self_contained_and_idempotent() {
        let lab = Lab::get();
        let dir = tempfile::tempdir().unwrap();
        let kc = mint(lab, "worker-2", dir.path());
        let root = tempfile::tempdir().unwrap();
        let install = || {
            stdout_of(
                wkjoin()
                    .args(["config", "--node-name", "worker-2", "--kubernetes-version", "v1.20.2", "--from"])
                    .arg(&kc)
                    .arg("--root-dir")
                    .arg(root.path()),
            )
        };
        let first = install();
        let target = root.path().join("config");
        assert!(first.contains(&format!("installed the credentials as {} (owner-only)", target.display())), "{first}");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        let installed = std::fs::read_to_string(&target).unwrap();
        assert!(installed.contains("certificate-authority-data:") && installed.contains("client-key-data:"));
        let second = install();
        assert!(
            second.contains(&format!("unchanged: {} already holds these credentials", target.display())),
            "{second}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), installed);
        assert_eq!(tree(root.path()), ["config"]);
        // The installed file checks out on its own (the default of `config check`).
        let out =
            stdout_of(wkjoin().args(["config", "check", "--node-name", "worker-2", "--root-dir"]).arg(root.path()));
        assert!(out.contains("0 failed"), "{out}");
    }

    /// A kubeadm-style bootstrap token Secret in kube-system, deleted on drop.
    struct BootstrapToken<'a> {
        lab: &'a Lab,
        id: String,
        secret: String,
    }

    impl<'a> BootstrapToken<'a> {
        /// A token in kubeadm's group system:bootstrappers:kubeadm:default-node-token.
        fn create(lab: &'a Lab) -> BootstrapToken<'a> {
            Self::with_groups(lab, "system:bootstrappers:kubeadm:default-node-token")
        }

        fn with_groups(lab: &'a Lab, groups: &str) -> BootstrapToken<'a> {
            // Distinct per run: derived from the clock and the process id, in [a-z0-9].
            let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                ^ ((std::process::id() as u128) << 64);
            let chars: Vec<char> = (0..22)
                .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[((seed >> (i * 5)) % 36) as usize] as char)
                .collect();
            let id: String = chars[..6].iter().collect();
            let secret: String = chars[6..].iter().collect();
            let expiration = humantime::format_rfc3339_seconds(
                std::time::SystemTime::now() + std::time::Duration::from_secs(15 * 60),
            )
            .to_string();
            let name = format!("bootstrap-token-{id}");
            lab.kubectl(&[
                "-n",
                "kube-system",
                "create",
                "secret",
                "generic",
                &name,
                "--type",
                "bootstrap.kubernetes.io/token",
                &format!("--from-literal=token-id={id}"),
                &format!("--from-literal=token-secret={secret}"),
                "--from-literal=usage-bootstrap-authentication=true",
                "--from-literal=usage-bootstrap-signing=true",
                &format!("--from-literal=auth-extra-groups={groups}"),
                &format!("--from-literal=expiration={expiration}"),
            ]);
            BootstrapToken { lab, id, secret }
        }

        fn token(&self) -> String {
            format!("{}.{}", self.id, self.secret)
        }
    }

    impl Drop for BootstrapToken<'_> {
        fn drop(&mut self) {
            let name = format!("bootstrap-token-{}", self.id);
            let _ = self.lab.try_kubectl(&["-n", "kube-system", "delete", "secret", &name, "--ignore-not-found"]);
        }
    }

    const LAB_CA: &str = "/var/lib/wkjoin-lab/pki/ca.crt";

    fn config_token(token: &str, root: &Path) -> std::process::Output {
        config_token_with(token, root, &["--ca-file", LAB_CA])
    }

    fn config_token_with(token: &str, root: &Path, ca: &[&str]) -> std::process::Output {
        wkjoin()
            .args(["config", "--node-name", "worker-2", "--kubernetes-version", "v1.20.2", "--csr-timeout", "60s"])
            .args(["--server", "https://172.30.0.10:6443"])
            .args(ca)
            .args(["--token", token, "--root-dir"])
            .arg(root)
            .output()
            .unwrap()
    }

    /// kubeadm's CA pin of the lab's CA, computed with openssl as the kubeadm docs do.
    fn lab_ca_pin() -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -pubkey -noout -in {LAB_CA} | openssl pkey -pubin -outform der | openssl dgst -sha256 -r"
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let hex = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string();
        assert_eq!(hex.len(), 64, "{hex}");
        format!("sha256:{hex}")
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_token_discovery_checks_the_ca_hash() {
        let lab = Lab::get();
        let token = BootstrapToken::create(lab);
        let root = tempfile::tempdir().unwrap();
        let pin = lab_ca_pin();

        let wrong = format!("sha256:{}", "0".repeat(64));
        let out = config_token_with(&token.token(), root.path(), &["--discovery-token-ca-cert-hash", &wrong]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "the cluster CA served by https://172.30.0.10:6443 has public key hash {pin}, not the \
                 --discovery-token-ca-cert-hash given ({wrong})"
            )),
            "{err}"
        );
        assert!(tree(root.path()).is_empty());

        let out = config_token_with(&token.token(), root.path(), &["--discovery-token-ca-cert-hash", &pin]);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(!stdout.contains(&token.secret) && !stderr.contains(&token.secret), "{stdout}\n{stderr}");
        assert_eq!(tree(root.path()), ["config"]);
        let target = root.path().join("config");
        let (code, report) = check(&target, "worker-2");
        assert_eq!(find(&report, "tls").0, "pass", "{report:#}");
        assert_eq!(find(&report, "identity").0, "pass", "{report:#}");
        assert_eq!(code, 0, "{report:#}");
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_token_without_the_node_group_may_not_create_a_csr() {
        let lab = Lab::get();
        let token = BootstrapToken::with_groups(lab, "system:bootstrappers:wkjoin-test");
        let root = tempfile::tempdir().unwrap();
        let out = config_token(&token.token(), root.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("bootstrap token {} may not create a node CSR: ", token.id)), "{err}");
        assert!(!err.contains(&token.secret), "{err}");
        assert!(tree(root.path()).is_empty());
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_config_token_bootstraps_a_node_identity_and_a_wrong_token_writes_nothing() {
        let lab = Lab::get();
        let token = BootstrapToken::create(lab);

        // A wrong secret for the same id: refused by the API server, nothing written, the token not echoed.
        let root = tempfile::tempdir().unwrap();
        let wrong = format!("{}.{}", token.id, "0000000000000000");
        let out = config_token(&wrong, root.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "the API server at https://172.30.0.10:6443 refused bootstrap token {}: it is wrong, expired or was \
                 deleted",
                token.id
            )),
            "{err}"
        );
        assert!(!err.contains("0000000000000000") && !err.contains(&token.secret), "{err}");
        assert!(tree(root.path()).is_empty(), "{:?}", tree(root.path()));

        // The right one: the cluster approves the node CSR on its own, the node identity is installed.
        let out = config_token(&token.token(), root.path());
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(!stdout.contains(&token.secret) && !stderr.contains(&token.secret), "{stdout}\n{stderr}");
        let target = root.path().join("config");
        assert!(
            stdout.contains(&format!("installed the credentials as {} (owner-only)", target.display())),
            "{stdout}"
        );
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(tree(root.path()), ["config"]);
        let installed = std::fs::read_to_string(&target).unwrap();
        assert!(!installed.contains(&token.secret), "the token must not be installed");
        let (code, report) = check(&target, "worker-2");
        for name in ["credentials", "client-certificate", "identity", "tls", "api", "node-access", "least-privilege"] {
            assert_eq!(find(&report, name).0, "pass", "{name}: {report:#}");
        }
        assert!(find(&report, "identity").1.starts_with("CN=system:node:worker-2, O=system:nodes"), "{report:#}");
        assert_eq!(code, 0, "{report:#}");
    }
}
