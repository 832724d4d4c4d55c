//! Windows SCM services as pure values: the command line the SCM runs (quoted by the rules
//! `CommandLineToArgvW` and the MSVC runtime parse), the failure actions, the `Environment` value and which
//! calls bring an installed service to a spec. The FFI that makes those calls lives in `host/windows`.

use super::service::{Restart, ServiceSpec, restart_delay};

/// After a day without failures the SCM counts restarts from the first delay again.
pub const FAILURE_RESET_SECS: u32 = 24 * 60 * 60;

/// One argument quoted for a Windows command line: unchanged unless it is empty or holds a space, tab, newline
/// or double quote; then in quotes, with the backslashes before a quote (or the closing quote) doubled.
pub fn quote_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\u{b}', '"']) {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

/// The program and its arguments as the one command line the SCM stores (`lpBinaryPathName`). The program is
/// always quoted: an unquoted path with spaces is the classic "unquoted service path" hole, and the first word
/// is parsed without escapes, so it must not hold a quote (Windows paths cannot).
pub fn command_line(program: &str, args: &[String]) -> String {
    let mut line = format!("\"{program}\"");
    for a in args {
        line.push(' ');
        line.push_str(&quote_arg(a));
    }
    line
}

/// `items` as a REG_MULTI_SZ / SCM dependency list: each string NUL-terminated, then one more NUL. An empty
/// list is two NULs, which `ChangeServiceConfigW` reads as "no dependencies" (a null pointer means "unchanged").
pub fn multi_sz(items: &[String]) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    for i in items {
        out.extend(i.encode_utf16());
        out.push(0);
    }
    if items.is_empty() {
        out.push(0);
    }
    out.push(0);
    out
}

/// The strings of a multi-sz (stops at the first empty string).
pub fn parse_multi_sz(raw: &[u16]) -> Vec<String> {
    raw.split(|c| *c == 0).take_while(|s| !s.is_empty()).map(String::from_utf16_lossy).collect()
}

/// The restart delays in milliseconds, one SCM failure action each: the spec's delay doubling up to its
/// maximum (the supervisor's backoff). The SCM repeats the last action for every later failure.
pub fn failure_delays_ms(restart: &Restart) -> Vec<u32> {
    let mut out = Vec::new();
    for n in 1.. {
        let ms = u32::try_from(restart_delay(restart, n).as_millis()).unwrap_or(u32::MAX);
        if out.last() == Some(&ms) || out.len() >= 16 {
            break;
        }
        out.push(ms);
    }
    out
}

/// What the SCM (and the service's registry key) holds for a service; compared field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmConfig {
    pub command_line: String,
    pub display_name: String,
    pub description: String,
    pub dependencies: Vec<String>,
    pub auto_start: bool,
    pub failure_delays_ms: Vec<u32>,
    pub failure_reset_secs: u32,
    /// `KEY=value` strings of the `Environment` value, sorted by key.
    pub environment: Vec<String>,
}

/// The configuration a spec asks for.
pub fn desired(spec: &ServiceSpec) -> ScmConfig {
    ScmConfig {
        command_line: command_line(&spec.program, &spec.args),
        display_name: spec.name.clone(),
        description: spec.description.clone(),
        dependencies: spec.depends_on.clone(),
        auto_start: true,
        failure_delays_ms: failure_delays_ms(&spec.restart),
        failure_reset_secs: FAILURE_RESET_SECS,
        environment: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    }
}

/// One SCM (or registry) call of an install or update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScmCall {
    /// `CreateServiceW` (own process, auto start, command line, dependencies).
    Create,
    /// `ChangeServiceConfigW` with the command line, start type, dependencies and display name.
    ChangeConfig,
    /// `ChangeServiceConfig2W(SERVICE_CONFIG_DESCRIPTION)`.
    SetDescription,
    /// `ChangeServiceConfig2W(SERVICE_CONFIG_FAILURE_ACTIONS)` and the flag that applies them to non-crash
    /// failures (a service that stops itself with an error).
    SetFailureActions,
    /// The `Environment` REG_MULTI_SZ under the service's key (deleted when the spec has none).
    SetEnvironment,
}

/// The calls that bring `current` (None: not installed) to `desired`, in order.
pub fn calls(current: Option<&ScmConfig>, desired: &ScmConfig) -> Vec<ScmCall> {
    let Some(cur) = current else {
        let mut out = vec![ScmCall::Create, ScmCall::SetDescription, ScmCall::SetFailureActions];
        if !desired.environment.is_empty() {
            out.push(ScmCall::SetEnvironment);
        }
        return out;
    };
    let mut out = Vec::new();
    if cur.command_line != desired.command_line
        || cur.display_name != desired.display_name
        || cur.dependencies != desired.dependencies
        || cur.auto_start != desired.auto_start
    {
        out.push(ScmCall::ChangeConfig);
    }
    if cur.description != desired.description {
        out.push(ScmCall::SetDescription);
    }
    if cur.failure_delays_ms != desired.failure_delays_ms || cur.failure_reset_secs != desired.failure_reset_secs {
        out.push(ScmCall::SetFailureActions);
    }
    if cur.environment != desired.environment {
        out.push(ScmCall::SetEnvironment);
    }
    out
}

/// Whether a running service must be restarted for the calls to take effect: the process only reads its
/// command line and environment when it starts.
pub fn needs_restart(calls: &[ScmCall]) -> bool {
    calls.iter().any(|c| matches!(c, ScmCall::ChangeConfig | ScmCall::SetEnvironment))
}

/// What to stop, in order, before `name` can be restarted: the SCM refuses to stop a service while services
/// that depend on it run, so those (and theirs) go first. They are started again by their own start actions.
pub fn stop_order(specs: &[&ServiceSpec], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    fn visit(specs: &[&ServiceSpec], name: &str, out: &mut Vec<String>) {
        if out.iter().any(|n| n == name) {
            return;
        }
        for dependent in specs.iter().filter(|s| s.depends_on.iter().any(|d| d == name)) {
            visit(specs, &dependent.name, out);
        }
        out.push(name.to_string());
    }
    visit(specs, name, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "kube-proxy".into(),
            description: "Kubernetes service proxy".into(),
            program: r"C:\k\kube-proxy.exe".into(),
            args: vec!["--v=2".into(), "--windows-service".into()],
            env: BTreeMap::from([("KUBE_NETWORK".to_string(), "cbr0".to_string())]),
            depends_on: vec!["kubelet".into()],
            log_file: r"C:\k\logs\kube-proxy.log".into(),
            restart: Restart { delay_secs: 5, max_delay_secs: 60 },
        }
    }

    #[test]
    fn arguments_are_quoted_by_the_windows_rules() {
        assert_eq!(quote_arg("--v=2"), "--v=2");
        assert_eq!(quote_arg(r"C:\k\a b"), r#""C:\k\a b""#);
        assert_eq!(quote_arg(""), r#""""#);
        assert_eq!(quote_arg(r#"a"b"#), r#""a\"b""#);
        // Backslashes are literal unless a quote follows them.
        assert_eq!(quote_arg(r#"a\"b"#), r#""a\\\"b""#);
        assert_eq!(quote_arg(r"C:\dir with space\"), r#""C:\dir with space\\""#);
        assert_eq!(quote_arg(r"C:\k\"), r"C:\k\");
        assert_eq!(
            command_line(r"C:\Program Files\k\kubelet.exe", &["--resolv-conf=".into(), "--node-labels=a=b c".into()]),
            r#""C:\Program Files\k\kubelet.exe" --resolv-conf= "--node-labels=a=b c""#
        );
    }

    #[test]
    fn multi_sz_round_trips() {
        let items = vec!["KUBE_NETWORK=cbr0".to_string(), "A=é".to_string()];
        let raw = multi_sz(&items);
        assert_eq!(raw.iter().filter(|c| **c == 0).count(), 3);
        assert_eq!(&raw[raw.len() - 2..], &[0, 0]);
        assert_eq!(parse_multi_sz(&raw), items);
        assert_eq!(multi_sz(&[]), vec![0, 0]);
        assert!(parse_multi_sz(&multi_sz(&[])).is_empty());
    }

    #[test]
    fn failure_actions_grow_to_the_maximum() {
        assert_eq!(
            failure_delays_ms(&Restart { delay_secs: 5, max_delay_secs: 60 }),
            [5000, 10000, 20000, 40000, 60000]
        );
        assert_eq!(failure_delays_ms(&Restart { delay_secs: 7, max_delay_secs: 7 }), [7000]);
        // A maximum below the delay never shortens the first delay.
        assert_eq!(failure_delays_ms(&Restart { delay_secs: 10, max_delay_secs: 1 }), [10000]);
    }

    #[test]
    fn dependents_stop_first() {
        let kubelet = ServiceSpec { name: "kubelet".into(), depends_on: vec![], ..spec() };
        let proxy = spec();
        let extra = ServiceSpec { name: "extra".into(), depends_on: vec!["kube-proxy".into()], ..spec() };
        let all = [&kubelet, &proxy, &extra];
        assert_eq!(stop_order(&all, "kubelet"), ["extra", "kube-proxy", "kubelet"]);
        assert_eq!(stop_order(&all, "kube-proxy"), ["extra", "kube-proxy"]);
        assert_eq!(stop_order(&all, "extra"), ["extra"]);
    }

    #[test]
    fn calls_follow_what_changed() {
        let want = desired(&spec());
        assert_eq!(want.environment, ["KUBE_NETWORK=cbr0"]);
        assert_eq!(want.command_line, r#""C:\k\kube-proxy.exe" --v=2 --windows-service"#);
        assert_eq!(
            calls(None, &want),
            [ScmCall::Create, ScmCall::SetDescription, ScmCall::SetFailureActions, ScmCall::SetEnvironment]
        );
        assert!(calls(Some(&want), &want).is_empty());

        let mut cur = want.clone();
        cur.environment = vec!["KUBE_NETWORK=other".into()];
        cur.description = "old".into();
        let c = calls(Some(&cur), &want);
        assert_eq!(c, [ScmCall::SetDescription, ScmCall::SetEnvironment]);
        assert!(needs_restart(&c));

        let mut cur = want.clone();
        cur.failure_delays_ms = vec![60000];
        let c = calls(Some(&cur), &want);
        assert_eq!(c, [ScmCall::SetFailureActions]);
        assert!(!needs_restart(&c));

        let mut cur = want.clone();
        cur.dependencies.clear();
        assert_eq!(calls(Some(&cur), &want), [ScmCall::ChangeConfig]);
        let mut cur = want.clone();
        cur.auto_start = false;
        assert_eq!(calls(Some(&cur), &want), [ScmCall::ChangeConfig]);
    }
}
