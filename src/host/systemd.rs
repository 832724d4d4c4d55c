//! systemd units for the node services (Linux with systemd as PID 1), as pure text: a `ServiceSpec` becomes
//! `/etc/systemd/system/wkjoin-<name>.service`. `wkjoin start` writes them, reloads systemd and enables them.

use crate::host::service::ServiceSpec;

/// Where wkjoin's units live.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// `kubelet` → `wkjoin-kubelet.service`; a name that already says wkjoin keeps it once (`wkjoin-routes.service`).
pub fn unit_name(service: &str) -> String {
    if service.starts_with("wkjoin-") { format!("{service}.service") } else { format!("wkjoin-{service}.service") }
}

/// The unit file's path.
pub fn unit_path(service: &str) -> String {
    format!("{UNIT_DIR}/{}", unit_name(service))
}

/// `%` starts a unit specifier everywhere in a unit file; `%%` is a literal one.
fn no_specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// `s` inside double quotes with the C escapes systemd reads there.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One word of an `ExecStart=` line: `$` and `%` doubled (no variable or specifier expansion), quoted with
/// C escapes when it is empty or holds whitespace, quotes, backslashes or is the command separator `;`.
pub fn exec_word(arg: &str) -> String {
    let plain = no_specifiers(arg).replace('$', "$$");
    let needs_quotes =
        plain.is_empty() || plain == ";" || plain.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
    if needs_quotes { quoted(&plain) } else { plain }
}

/// The unit file for `spec`.
pub fn unit_text(spec: &ServiceSpec) -> String {
    let deps: Vec<String> = spec.depends_on.iter().map(|d| unit_name(d)).collect();
    let mut after = vec!["network-online.target".to_string()];
    after.extend(deps.iter().cloned());
    let mut u = String::new();
    u.push_str(&format!(
        "# Written by `wkjoin start`; `wkjoin start --stop` removes it. Changes are overwritten.\n[Unit]\nDescription={}\n",
        no_specifiers(&spec.description)
    ));
    u.push_str("Wants=network-online.target\n");
    u.push_str(&format!("After={}\n", after.join(" ")));
    if !deps.is_empty() {
        u.push_str(&format!("Requires={}\n", deps.join(" ")));
    }
    // Restart forever: a node agent that gave up after five quick failures is a NotReady node.
    u.push_str("StartLimitIntervalSec=0\n\n[Service]\nType=simple\n");
    for (k, v) in &spec.env {
        u.push_str(&format!("Environment={}\n", quoted(&no_specifiers(&format!("{k}={v}")))));
    }
    let mut exec = vec![exec_word(&spec.program)];
    exec.extend(spec.args.iter().map(|a| exec_word(a)));
    u.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    let steps = super::scm_calls::failure_delays_ms(&spec.restart).len().saturating_sub(1);
    u.push_str(&format!("Restart=always\nRestartSec={}\n", spec.restart.delay_secs));
    if steps > 0 {
        // systemd 254+ grows the delay to the maximum like the supervisor; older ones ignore these two keys.
        u.push_str(&format!(
            "RestartSteps={steps}\nRestartMaxDelaySec={}\n",
            spec.restart.max_delay_secs.max(spec.restart.delay_secs)
        ));
    }
    u.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::service::Restart;
    use std::collections::BTreeMap;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "kube-proxy".into(),
            description: "Kubernetes service proxy".into(),
            program: "/var/lib/wkjoin/bin/kube-proxy".into(),
            args: vec![
                "--kubeconfig=/var/lib/wkjoin/node.kubeconfig".into(),
                "--node-labels=a=b c".into(),
                "--resolv-conf=".into(),
                "".into(),
                r#"--x="$HOME"\%"#.into(),
            ],
            env: BTreeMap::from([("KUBE_NETWORK".to_string(), "my net".to_string())]),
            depends_on: vec!["kubelet".into()],
            log_file: "/var/lib/wkjoin/logs/kube-proxy.log".into(),
            restart: Restart { delay_secs: 5, max_delay_secs: 60 },
        }
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("kubelet"), "wkjoin-kubelet.service");
        assert_eq!(unit_name("wkjoin-routes"), "wkjoin-routes.service");
        assert_eq!(unit_path("kube-proxy"), "/etc/systemd/system/wkjoin-kube-proxy.service");
    }

    #[test]
    fn exec_words_are_escaped() {
        assert_eq!(exec_word("--v=2"), "--v=2");
        assert_eq!(exec_word(""), r#""""#);
        assert_eq!(exec_word(";"), r#"";""#);
        assert_eq!(exec_word("a b"), r#""a b""#);
        assert_eq!(exec_word("50%"), "50%%");
        assert_eq!(exec_word("$X"), "$$X");
        assert_eq!(exec_word(r#"a\"b"#), r#""a\\\"b""#);
    }

    #[test]
    fn unit_text_golden() {
        let want = r#"# Written by `wkjoin start`; `wkjoin start --stop` removes it. Changes are overwritten.
[Unit]
Description=Kubernetes service proxy
Wants=network-online.target
After=network-online.target wkjoin-kubelet.service
Requires=wkjoin-kubelet.service
StartLimitIntervalSec=0

[Service]
Type=simple
Environment="KUBE_NETWORK=my net"
ExecStart=/var/lib/wkjoin/bin/kube-proxy --kubeconfig=/var/lib/wkjoin/node.kubeconfig "--node-labels=a=b c" --resolv-conf= "" "--x=\"$$HOME\"\\%%"
Restart=always
RestartSec=5
RestartSteps=4
RestartMaxDelaySec=60

[Install]
WantedBy=multi-user.target
"#;
        assert_eq!(unit_text(&spec()), want);
    }

    #[test]
    fn a_unit_without_dependencies_or_backoff() {
        let mut s = spec();
        s.depends_on.clear();
        s.env.clear();
        s.restart = Restart { delay_secs: 3, max_delay_secs: 3 };
        let u = unit_text(&s);
        assert!(!u.contains("Requires=") && !u.contains("Environment=") && !u.contains("RestartSteps"));
        assert!(u.contains("After=network-online.target\n") && u.contains("RestartSec=3\n"));
    }
}
