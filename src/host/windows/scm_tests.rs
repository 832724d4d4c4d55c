//! The SCM FFI against wine's (or Windows') service manager.

use crate::host::scm_calls::command_line;

/// How Windows itself splits a command line (what the MSVC runtime and Rust's std::env::args do).
fn split(line: &str) -> Vec<String> {
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::UI::Shell::CommandLineToArgvW;
    let w: Vec<u16> = line.encode_utf16().chain(std::iter::once(0)).collect();
    let mut n = 0;
    // SAFETY: a NUL-terminated line; the returned array is freed with LocalFree after copying.
    unsafe {
        let argv = CommandLineToArgvW(w.as_ptr(), &mut n);
        assert!(!argv.is_null());
        let out = (0..n as usize).map(|i| super::read_wide(*argv.add(i))).collect();
        LocalFree(argv.cast());
        out
    }
}

/// Installs a service that is never started, reads it back, updates it and deletes it.
#[test]
#[ignore = "creates a Windows service: run as Administrator, or under wine (`-- --ignored scm_`)"]
fn scm_install_reads_back_and_updates_in_place() {
    use crate::host::scm_calls::ScmCall;
    use crate::host::service::{Restart, ServiceSpec};
    let name = format!("wkjoin-test-{}", std::process::id());
    let mut spec = ServiceSpec {
        name: name.clone(),
        description: "wkjoin test service".into(),
        program: r"C:\Program Files\wkjoin test\none.exe".into(),
        args: vec!["--a=b c".into(), "".into()],
        env: [("KUBE_NETWORK".to_string(), "cbr0".to_string())].into(),
        depends_on: vec!["wkjoin-test-dependency".into(), "Tcpip".into()],
        log_file: String::new(),
        restart: Restart { delay_secs: 5, max_delay_secs: 60 },
    };
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = crate::host::delete_service(&self.0);
        }
    }
    let _ = crate::host::delete_service(&name);
    let _cleanup = Cleanup(name.clone());
    let result = (|| {
        let first = super::install_service(&spec)?;
        assert_eq!(first[0], ScmCall::Create);
        // Read back: the same spec needs no call.
        assert_eq!(super::install_service(&spec)?, []);
        assert!(!super::service_running(&name)?);
        spec.env.clear();
        spec.depends_on.truncate(1);
        spec.args.push("--v=4".into());
        spec.restart.max_delay_secs = 5;
        let calls = super::install_service(&spec)?;
        // Windows reports the failure actions too; wine cannot, so there they read back as asked for.
        let others: Vec<ScmCall> = calls.into_iter().filter(|c| *c != ScmCall::SetFailureActions).collect();
        assert_eq!(others, [ScmCall::ChangeConfig, ScmCall::SetEnvironment]);
        assert_eq!(super::install_service(&spec)?, []);
        Ok::<(), crate::host::HostError>(())
    })();
    result.unwrap();
    crate::host::delete_service(&name).unwrap();
}

#[test]
fn service_command_lines_round_trip_through_command_line_to_argv() {
    let program = r"C:\Program Files\k\kubelet.exe".to_string();
    let args: Vec<String> = [
        "--v=2",
        "--resolv-conf=",
        "",
        "--node-labels=a=b c",
        r#"--x="quoted""#,
        r"C:\dir with space\",
        r#"back\\"slash"#,
        r"C:\k\logs\",
        "tab\there",
        "ünï",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = split(&command_line(&program, &args));
    let mut want = vec![program];
    want.extend(args);
    assert_eq!(got, want);
}
