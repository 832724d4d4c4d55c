//! Node services under the Service Control Manager: install or update from a `ServiceSpec`, start, query, and
//! wkjoin's own service entry point (`wkjoin routes --watch --windows-service`). Thin FFI: what to call is
//! decided by `host::scm_calls`.

use crate::host::HostError;
use crate::host::scm_calls::{self as scm, ScmCall, ScmConfig};
use crate::host::service::ServiceSpec;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_LEVEL, ERROR_SERVICE_ALREADY_RUNNING,
    ERROR_SERVICE_DOES_NOT_EXIST, GetLastError,
};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_QUERY_VALUE, KEY_SET_VALUE, REG_MULTI_SZ, RegCloseKey, RegDeleteValueW,
    RegOpenKeyExW, RegQueryValueExW, RegSetValueExW,
};
use windows_sys::Win32::System::Services::{
    ChangeServiceConfig2W, ChangeServiceConfigW, CloseServiceHandle, CreateServiceW, OpenSCManagerW, OpenServiceW,
    QUERY_SERVICE_CONFIGW, QueryServiceConfig2W, QueryServiceConfigW, QueryServiceStatus, SC_ACTION, SC_ACTION_RESTART,
    SC_HANDLE, SC_MANAGER_CONNECT, SC_MANAGER_CREATE_SERVICE, SERVICE_AUTO_START, SERVICE_CHANGE_CONFIG,
    SERVICE_CONFIG_DESCRIPTION, SERVICE_CONFIG_FAILURE_ACTIONS, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
    SERVICE_DESCRIPTIONW, SERVICE_ERROR_NORMAL, SERVICE_FAILURE_ACTIONS_FLAG, SERVICE_FAILURE_ACTIONSW,
    SERVICE_NO_CHANGE, SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_START,
    SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STOPPED, SERVICE_WIN32_OWN_PROCESS,
};

/// How long a started service gets to report RUNNING.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn os_error(op: &'static str, what: &str, code: u32) -> HostError {
    HostError::Io { op, path: PathBuf::from(what), source: std::io::Error::from_raw_os_error(code as i32) }
}

fn last_error(op: &'static str, what: &str) -> HostError {
    // SAFETY: reads the calling thread's last error.
    os_error(op, what, unsafe { GetLastError() })
}

/// A service or SCM handle, closed on drop.
struct Handle(SC_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle was returned open by the SCM and is closed exactly once.
        unsafe { CloseServiceHandle(self.0) };
    }
}

fn open_scm(access: u32, what: &str) -> Result<Handle, HostError> {
    // SAFETY: local machine, default database.
    let h = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), access) };
    if h.is_null() { Err(last_error("open the service control manager for", what)) } else { Ok(Handle(h)) }
}

/// The service, or None when it does not exist.
fn open_service(scm: &Handle, name: &str, access: u32) -> Result<Option<Handle>, HostError> {
    let n = wide(name);
    // SAFETY: an open SCM handle and a NUL-terminated name.
    let h = unsafe { OpenServiceW(scm.0, n.as_ptr(), access) };
    if !h.is_null() {
        return Ok(Some(Handle(h)));
    }
    // SAFETY: reads the calling thread's last error.
    match unsafe { GetLastError() } {
        ERROR_SERVICE_DOES_NOT_EXIST => Ok(None),
        code => Err(os_error("open service", name, code)),
    }
}

/// Reads a NUL-terminated UTF-16 string (None for a null pointer).
///
/// # Safety
/// `p` is null or points to a NUL-terminated UTF-16 string.
pub(super) unsafe fn read_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per the contract, the string ends with a NUL within its allocation.
    unsafe {
        let mut len = 0;
        while *p.add(len) != 0 {
            len += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
    }
}

/// Calls a "fill this buffer" API twice: once for the size, once for the data. The buffer is u64-aligned so
/// the structs the SCM writes at its start are aligned.
/// Errors are the Win32 error code.
fn sized_query(mut query: impl FnMut(*mut u8, u32, &mut u32) -> i32) -> Result<Vec<u64>, u32> {
    let mut needed = 0u32;
    if query(std::ptr::null_mut(), 0, &mut needed) == 0 {
        // SAFETY: reads the calling thread's last error.
        let code = unsafe { GetLastError() };
        if code != ERROR_INSUFFICIENT_BUFFER {
            return Err(code);
        }
    }
    let mut buf = vec![0u64; (needed as usize).div_ceil(8).max(1)];
    if query(buf.as_mut_ptr().cast(), (buf.len() * 8) as u32, &mut needed) == 0 {
        // SAFETY: reads the calling thread's last error.
        return Err(unsafe { GetLastError() });
    }
    Ok(buf)
}

fn service_key(name: &str, access: u32) -> Result<Option<HKEY>, HostError> {
    let path = wide(&format!(r"SYSTEM\CurrentControlSet\Services\{name}"));
    let mut key: HKEY = std::ptr::null_mut();
    // SAFETY: a NUL-terminated subkey path and an out pointer for the key.
    match unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, path.as_ptr(), 0, access, &mut key) } {
        0 => Ok(Some(key)),
        ERROR_FILE_NOT_FOUND => Ok(None),
        code => Err(os_error("open the registry key of service", name, code)),
    }
}

/// A REG_MULTI_SZ value of the service's key (empty when there is none): `Environment`, or `DependOnService`
/// (which `QueryServiceConfigW` reports as well, except under wine).
fn read_multi_sz_value(name: &str, value: &str) -> Result<Vec<String>, HostError> {
    let Some(key) = service_key(name, KEY_QUERY_VALUE)? else { return Ok(Vec::new()) };
    let value = wide(value);
    let mut size = 0u32;
    let mut kind = 0u32;
    // SAFETY: an open key, a NUL-terminated value name; the first call asks for the size only.
    let r =
        unsafe { RegQueryValueExW(key, value.as_ptr(), std::ptr::null(), &mut kind, std::ptr::null_mut(), &mut size) };
    let out = if r != 0 || kind != REG_MULTI_SZ {
        Vec::new()
    } else {
        let mut buf = vec![0u16; (size as usize).div_ceil(2) + 2];
        let mut bytes = (buf.len() * 2) as u32;
        // SAFETY: the buffer holds `bytes` bytes; two extra NULs terminate a value stored without them.
        let r = unsafe {
            RegQueryValueExW(key, value.as_ptr(), std::ptr::null(), &mut kind, buf.as_mut_ptr().cast(), &mut bytes)
        };
        if r == 0 { scm::parse_multi_sz(&buf) } else { Vec::new() }
    };
    // SAFETY: closes the key opened above.
    unsafe { RegCloseKey(key) };
    Ok(out)
}

fn write_environment(name: &str, env: &[String]) -> Result<(), HostError> {
    let Some(key) = service_key(name, KEY_SET_VALUE)? else {
        return Err(os_error("set the environment of service", name, ERROR_SERVICE_DOES_NOT_EXIST));
    };
    let value = wide("Environment");
    let r = if env.is_empty() {
        // SAFETY: an open key and a NUL-terminated value name.
        match unsafe { RegDeleteValueW(key, value.as_ptr()) } {
            ERROR_FILE_NOT_FOUND => 0,
            r => r,
        }
    } else {
        let data = scm::multi_sz(env);
        // SAFETY: `data` holds `data.len() * 2` bytes of REG_MULTI_SZ.
        unsafe { RegSetValueExW(key, value.as_ptr(), 0, REG_MULTI_SZ, data.as_ptr().cast(), (data.len() * 2) as u32) }
    };
    // SAFETY: closes the key opened above.
    unsafe { RegCloseKey(key) };
    if r == 0 { Ok(()) } else { Err(os_error("set the environment of service", name, r)) }
}

/// What the SCM holds for an installed service. Failure actions the SCM cannot report (wine) are taken
/// as `want`'s: they are written on install, and rewriting them on every run would hide nothing.
fn current(svc: &Handle, name: &str, want: &ScmConfig) -> Result<ScmConfig, HostError> {
    let err = |code| os_error("query the configuration of service", name, code);
    let cfg = sized_query(|buf, size, needed| {
        // SAFETY: `buf` is null (size 0) or an aligned buffer of `size` bytes.
        unsafe { QueryServiceConfigW(svc.0, buf.cast(), size, needed) }
    })
    .map_err(err)?;
    let desc = sized_query(|buf, size, needed| {
        // SAFETY: as above.
        unsafe { QueryServiceConfig2W(svc.0, SERVICE_CONFIG_DESCRIPTION, buf, size, needed) }
    })
    .map_err(err)?;
    let fail = match sized_query(|buf, size, needed| {
        // SAFETY: as above.
        unsafe { QueryServiceConfig2W(svc.0, SERVICE_CONFIG_FAILURE_ACTIONS, buf, size, needed) }
    }) {
        Ok(buf) => Some(buf),
        Err(ERROR_INVALID_LEVEL) => None,
        Err(code) => return Err(err(code)),
    };
    // SAFETY: each buffer starts with the struct its query wrote; the pointers in it point into the buffer.
    unsafe {
        let c = &*(cfg.as_ptr() as *const QUERY_SERVICE_CONFIGW);
        let d = &*(desc.as_ptr() as *const SERVICE_DESCRIPTIONW);
        let (failure_delays_ms, failure_reset_secs) = match &fail {
            None => (want.failure_delays_ms.clone(), want.failure_reset_secs),
            Some(fail) => {
                let f = &*(fail.as_ptr() as *const SERVICE_FAILURE_ACTIONSW);
                let actions = if f.lpsaActions.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(f.lpsaActions, f.cActions as usize)
                };
                (actions.iter().filter(|a| a.Type == SC_ACTION_RESTART).map(|a| a.Delay).collect(), f.dwResetPeriod)
            }
        };
        Ok(ScmConfig {
            command_line: read_wide(c.lpBinaryPathName),
            display_name: read_wide(c.lpDisplayName),
            description: read_wide(d.lpDescription),
            dependencies: read_multi_sz_value(name, "DependOnService")?,
            auto_start: c.dwStartType == SERVICE_AUTO_START,
            failure_delays_ms,
            failure_reset_secs,
            environment: read_multi_sz_value(name, "Environment")?,
        })
    }
}

fn ok(r: i32, op: &'static str, name: &str) -> Result<(), HostError> {
    if r != 0 { Ok(()) } else { Err(last_error(op, name)) }
}

fn make_call(svc: &Handle, name: &str, want: &ScmConfig, call: ScmCall) -> Result<(), HostError> {
    let cmd = wide(&want.command_line);
    let display = wide(&want.display_name);
    let deps = scm::multi_sz(&want.dependencies);
    match call {
        ScmCall::Create => Ok(()),
        // SAFETY: an open handle with CHANGE_CONFIG access and NUL-terminated strings (deps a multi-sz).
        ScmCall::ChangeConfig => ok(
            unsafe {
                ChangeServiceConfigW(
                    svc.0,
                    SERVICE_WIN32_OWN_PROCESS,
                    SERVICE_AUTO_START,
                    SERVICE_NO_CHANGE,
                    cmd.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    deps.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    display.as_ptr(),
                )
            },
            "change the configuration of service",
            name,
        ),
        ScmCall::SetDescription => {
            let mut text = wide(&want.description);
            let d = SERVICE_DESCRIPTIONW { lpDescription: text.as_mut_ptr() };
            // SAFETY: the struct and its string live across the call.
            ok(
                unsafe { ChangeServiceConfig2W(svc.0, SERVICE_CONFIG_DESCRIPTION, (&raw const d).cast()) },
                "set the description of service",
                name,
            )
        }
        ScmCall::SetFailureActions => {
            let mut actions: Vec<SC_ACTION> =
                want.failure_delays_ms.iter().map(|ms| SC_ACTION { Type: SC_ACTION_RESTART, Delay: *ms }).collect();
            let f = SERVICE_FAILURE_ACTIONSW {
                dwResetPeriod: want.failure_reset_secs,
                lpRebootMsg: std::ptr::null_mut(),
                lpCommand: std::ptr::null_mut(),
                cActions: actions.len() as u32,
                lpsaActions: actions.as_mut_ptr(),
            };
            // SAFETY: the struct and its action array live across the call.
            ok(
                unsafe { ChangeServiceConfig2W(svc.0, SERVICE_CONFIG_FAILURE_ACTIONS, (&raw const f).cast()) },
                "set the failure actions of service",
                name,
            )?;
            // A service that stops itself with an error exit code counts as a failure too.
            let flag = SERVICE_FAILURE_ACTIONS_FLAG { fFailureActionsOnNonCrashFailures: 1 };
            // SAFETY: the struct lives across the call.
            if unsafe { ChangeServiceConfig2W(svc.0, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, (&raw const flag).cast()) }
                == 0
            {
                // SAFETY: reads the calling thread's last error.
                match unsafe { GetLastError() } {
                    // Windows since Vista has it; wine does not: crashes are still restarted.
                    ERROR_INVALID_LEVEL => tracing::warn!(
                        "the SCM cannot restart {name} after a clean exit with an error code (no failure actions flag)"
                    ),
                    code => return Err(os_error("set the failure actions flag of service", name, code)),
                }
            }
            Ok(())
        }
        ScmCall::SetEnvironment => write_environment(name, &want.environment),
    }
}

/// Installs the service, or brings an installed one to the spec; returns the calls made (empty: unchanged).
pub fn install_service(spec: &ServiceSpec) -> Result<Vec<ScmCall>, HostError> {
    let want = scm::desired(spec);
    let scm_h = open_scm(SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE, &spec.name)?;
    let access = SERVICE_QUERY_CONFIG | SERVICE_CHANGE_CONFIG | SERVICE_QUERY_STATUS | SERVICE_START;
    let (svc, have) = match open_service(&scm_h, &spec.name, access)? {
        Some(svc) => {
            let have = current(&svc, &spec.name, &want)?;
            (svc, Some(have))
        }
        None => {
            let name = wide(&spec.name);
            let cmd = wide(&want.command_line);
            let display = wide(&want.display_name);
            let deps = scm::multi_sz(&want.dependencies);
            // SAFETY: an SCM handle with CREATE_SERVICE access and NUL-terminated strings; LocalSystem account.
            let h = unsafe {
                CreateServiceW(
                    scm_h.0,
                    name.as_ptr(),
                    display.as_ptr(),
                    access,
                    SERVICE_WIN32_OWN_PROCESS,
                    SERVICE_AUTO_START,
                    SERVICE_ERROR_NORMAL,
                    cmd.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    deps.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                )
            };
            if h.is_null() {
                return Err(last_error("create service", &spec.name));
            }
            (Handle(h), None)
        }
    };
    let calls = scm::calls(have.as_ref(), &want);
    for c in &calls {
        make_call(&svc, &spec.name, &want, *c)?;
    }
    Ok(calls)
}

fn status(svc: &Handle, name: &str) -> Result<u32, HostError> {
    // SAFETY: an open handle with QUERY_STATUS access; the status struct is ours.
    unsafe {
        let mut st: SERVICE_STATUS = std::mem::zeroed();
        ok(QueryServiceStatus(svc.0, &mut st), "query the status of service", name)?;
        Ok(st.dwCurrentState)
    }
}

/// Whether the service is installed and running.
pub fn service_running(name: &str) -> Result<bool, HostError> {
    let scm_h = open_scm(SC_MANAGER_CONNECT, name)?;
    match open_service(&scm_h, name, SERVICE_QUERY_STATUS)? {
        None => Ok(false),
        Some(svc) => Ok(status(&svc, name)? == SERVICE_RUNNING),
    }
}

/// Starts the service (a running one is fine) and waits until it reports RUNNING.
pub fn start_service(name: &str) -> Result<(), HostError> {
    let scm_h = open_scm(SC_MANAGER_CONNECT, name)?;
    let Some(svc) = open_service(&scm_h, name, SERVICE_START | SERVICE_QUERY_STATUS)? else {
        return Err(os_error("start service", name, ERROR_SERVICE_DOES_NOT_EXIST));
    };
    // SAFETY: an open handle with START access; no arguments.
    if unsafe { windows_sys::Win32::System::Services::StartServiceW(svc.0, 0, std::ptr::null()) } == 0 {
        // SAFETY: reads the calling thread's last error.
        let code = unsafe { GetLastError() };
        if code != ERROR_SERVICE_ALREADY_RUNNING {
            return Err(os_error("start service", name, code));
        }
    }
    let until = Instant::now() + START_TIMEOUT;
    loop {
        match status(&svc, name)? {
            SERVICE_RUNNING => return Ok(()),
            SERVICE_STOPPED => {
                return Err(HostError::Io {
                    op: "start service",
                    path: PathBuf::from(name),
                    source: std::io::Error::other(
                        "it stopped again at once: see its log file and the System event log",
                    ),
                });
            }
            SERVICE_START_PENDING if Instant::now() < until => std::thread::sleep(Duration::from_millis(250)),
            state => {
                return Err(HostError::Io {
                    op: "start service",
                    path: PathBuf::from(name),
                    source: std::io::Error::other(format!(
                        "not running {}s after the start request (state {state})",
                        START_TIMEOUT.as_secs()
                    )),
                });
            }
        }
    }
}

/// Body of a service: runs until the receiver fires (the SCM asked it to stop); Err is its failure message.
pub type ServiceBody = Box<dyn FnOnce(tokio::sync::oneshot::Receiver<()>) -> Result<(), String> + Send>;

static SERVICE: std::sync::Mutex<Option<(String, ServiceBody)>> = std::sync::Mutex::new(None);

windows_service::define_windows_service!(ffi_service_main, service_main);

fn service_main(_args: Vec<std::ffi::OsString>) {
    use windows_service::service::{
        ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    let Some((name, body)) = SERVICE.lock().ok().and_then(|mut s| s.take()) else { return };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(&name, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("cannot register the service control handler of {name}: {e}");
            return;
        }
    };
    let report = |state, accept, exit| {
        let _ = handle.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: exit,
            checkpoint: 0,
            wait_hint: Duration::from_secs(10),
            process_id: None,
        });
    };
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        ServiceExitCode::NO_ERROR,
    );
    let exit = match body(rx) {
        Ok(()) => ServiceExitCode::NO_ERROR,
        Err(e) => {
            tracing::error!("{e}");
            // A service-specific exit code makes the SCM apply the failure actions (restart).
            ServiceExitCode::ServiceSpecific(1)
        }
    };
    report(ServiceState::Stopped, ServiceControlAccept::empty(), exit);
}

/// Runs `body` as the SCM service `name` (this process must have been started by the SCM): blocks until the
/// service stops. A service has no console; with `log`, stderr (wkjoin's log output) is appended to that file.
pub fn run_as_service(name: &str, log: Option<&Path>, body: ServiceBody) -> Result<(), HostError> {
    if let Some(log) = log {
        redirect_stderr(log)?;
    }
    *SERVICE.lock().map_err(|_| os_error("run as service", name, 0))? = Some((name.to_string(), body));
    windows_service::service_dispatcher::start(name, ffi_service_main).map_err(|e| HostError::Io {
        op: "connect to the service control manager as service",
        path: PathBuf::from(name),
        source: std::io::Error::other(format!("{e} (`--windows-service` is only for the SCM to run)")),
    })
}

fn redirect_stderr(log: &Path) -> Result<(), HostError> {
    use std::os::windows::io::IntoRawHandle;
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|source| HostError::Io {
        op: "open log",
        path: log.to_path_buf(),
        source,
    })?;
    let handle = file.into_raw_handle();
    // SAFETY: the handle stays open for the life of the process (it was leaked from the File on purpose);
    // Rust's stderr asks for the standard handle on every write.
    let r = unsafe {
        windows_sys::Win32::System::Console::SetStdHandle(windows_sys::Win32::System::Console::STD_ERROR_HANDLE, handle)
    };
    ok(r, "redirect stderr to", &log.display().to_string())
}

#[cfg(test)]
#[path = "scm_tests.rs"]
mod tests;
