//! Effects `wkjoin reset` needs on Windows: stop and delete SCM services, delete the HNS network. Each treats
//! "already gone" as done. Thin FFI.

use crate::host::HostError;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_NOT_ACTIVE, GetLastError};
use windows_sys::Win32::System::Com::CoTaskMemFree;
use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, ControlService, DeleteService, OpenSCManagerW, OpenServiceW, QueryServiceStatus,
    SC_MANAGER_CONNECT, SERVICE_CONTROL_STOP, SERVICE_QUERY_STATUS, SERVICE_STATUS, SERVICE_STOP, SERVICE_STOPPED,
};

const DELETE: u32 = 0x0001_0000;

fn unsupported(op: &'static str, what: &str) -> HostError {
    HostError::Io { op, path: PathBuf::from(what), source: std::io::ErrorKind::Unsupported.into() }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn last_error(op: &'static str, what: &str) -> HostError {
    HostError::Io { op, path: PathBuf::from(what), source: std::io::Error::last_os_error() }
}

/// Opens a service with `access`; `Ok(None)` when it does not exist.
fn with_service<T>(
    name: &str,
    access: u32,
    op: &'static str,
    f: impl FnOnce(windows_sys::Win32::System::Services::SC_HANDLE) -> Result<T, HostError>,
) -> Result<Option<T>, HostError> {
    // SAFETY: plain SCM calls with NUL-terminated names; every handle opened here is closed here.
    unsafe {
        let scm = OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT);
        if scm.is_null() {
            return Err(last_error(op, name));
        }
        let n = wide(name);
        let svc = OpenServiceW(scm, n.as_ptr(), access);
        if svc.is_null() {
            let code = GetLastError();
            CloseServiceHandle(scm);
            if code == ERROR_SERVICE_DOES_NOT_EXIST {
                return Ok(None);
            }
            return Err(HostError::Io {
                op,
                path: PathBuf::from(name),
                source: std::io::Error::from_raw_os_error(code as i32),
            });
        }
        let r = f(svc);
        CloseServiceHandle(svc);
        CloseServiceHandle(scm);
        r.map(Some)
    }
}

/// Not used on Windows: the node services run under the SCM.
pub fn stop_process(pid: u32, _program: Option<&str>) -> Result<(), HostError> {
    Err(unsupported("stop process", &pid.to_string()))
}

/// Asks the SCM to stop a service and waits up to 30 s for it; a missing or stopped service is fine.
pub fn stop_service(name: &str) -> Result<(), HostError> {
    with_service(name, SERVICE_STOP | SERVICE_QUERY_STATUS, "stop service", |svc| {
        // SAFETY: `svc` is an open handle with STOP and QUERY_STATUS access; the status struct is ours.
        unsafe {
            let mut st: SERVICE_STATUS = std::mem::zeroed();
            if ControlService(svc, SERVICE_CONTROL_STOP, &mut st) == 0 {
                let code = GetLastError();
                if code != ERROR_SERVICE_NOT_ACTIVE {
                    return Err(HostError::Io {
                        op: "stop service",
                        path: PathBuf::from(name),
                        source: std::io::Error::from_raw_os_error(code as i32),
                    });
                }
            }
            let until = Instant::now() + Duration::from_secs(30);
            loop {
                if QueryServiceStatus(svc, &mut st) == 0 {
                    return Err(last_error("query service", name));
                }
                if st.dwCurrentState == SERVICE_STOPPED {
                    return Ok(());
                }
                if Instant::now() > until {
                    return Err(HostError::Io {
                        op: "stop service",
                        path: PathBuf::from(name),
                        source: std::io::Error::other("still running 30 s after the stop request"),
                    });
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    })
    .map(|_| ())
}

/// Marks a service for deletion; a missing one is fine.
pub fn delete_service(name: &str) -> Result<(), HostError> {
    with_service(name, DELETE, "delete service", |svc| {
        // SAFETY: `svc` is an open handle with DELETE access.
        if unsafe { DeleteService(svc) } == 0 {
            // ERROR_SERVICE_MARKED_FOR_DELETE (1072): already on its way out.
            // SAFETY: reads the calling thread's last error.
            let code = unsafe { GetLastError() };
            if code != 1072 {
                return Err(HostError::Io {
                    op: "delete service",
                    path: PathBuf::from(name),
                    source: std::io::Error::from_raw_os_error(code as i32),
                });
            }
        }
        Ok(())
    })
    .map(|_| ())
}

/// Windows nodes have no kubelet mounts to undo.
pub fn unmount(path: &str) -> Result<(), HostError> {
    Err(unsupported("unmount", path))
}

/// The Windows pod network is an HNS network, not a link.
pub async fn delete_link(name: &str) -> Result<(), HostError> {
    Err(unsupported("delete link", name))
}

pub(super) fn take_wide(p: windows_sys::core::PWSTR) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: HCN returns NUL-terminated strings allocated with CoTaskMemAlloc; freed after copying.
    unsafe {
        let mut len = 0;
        while *p.add(len) != 0 {
            len += 1;
        }
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(p, len));
        CoTaskMemFree(p.cast());
        Some(s)
    }
}

fn parse_guid(s: &str) -> Option<windows_sys::core::GUID> {
    let hex: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (hex.len() == 32).then(|| u128::from_str_radix(&hex, 16).ok()).flatten().map(windows_sys::core::GUID::from_u128)
}

fn hcn_error(op: &'static str, name: &str, hr: i32, record: Option<String>) -> HostError {
    HostError::Io {
        op,
        path: PathBuf::from(name),
        source: std::io::Error::other(format!(
            "HRESULT {hr:#010x}{}",
            record.map(|r| format!(": {r}")).unwrap_or_default()
        )),
    }
}

type HcnEnumerateNetworks = unsafe extern "system" fn(
    windows_sys::core::PCWSTR,
    *mut windows_sys::core::PWSTR,
    *mut windows_sys::core::PWSTR,
) -> windows_sys::core::HRESULT;
type HcnDeleteNetwork = unsafe extern "system" fn(
    *const windows_sys::core::GUID,
    *mut windows_sys::core::PWSTR,
) -> windows_sys::core::HRESULT;

type HcnCreateNetwork = unsafe extern "system" fn(
    *const windows_sys::core::GUID,
    windows_sys::core::PCWSTR,
    *mut *mut std::ffi::c_void,
    *mut windows_sys::core::PWSTR,
) -> windows_sys::core::HRESULT;
type HcnCloseNetwork = unsafe extern "system" fn(*mut std::ffi::c_void) -> windows_sys::core::HRESULT;
type HcnOpenNetwork = unsafe extern "system" fn(
    *const windows_sys::core::GUID,
    *mut *mut std::ffi::c_void,
    *mut windows_sys::core::PWSTR,
) -> windows_sys::core::HRESULT;
type HcnQueryNetworkProperties = unsafe extern "system" fn(
    *const std::ffi::c_void,
    windows_sys::core::PCWSTR,
    *mut windows_sys::core::PWSTR,
    *mut windows_sys::core::PWSTR,
) -> windows_sys::core::HRESULT;

/// A function of computenetwork.dll, loaded at run time: it only exists with the Containers feature (and not
/// under wine), and a static import would keep wkjoin.exe from starting at all without it. Only System32's copy
/// is ever loaded: a computenetwork.dll planted beside wkjoin.exe or in the working dir is never picked up.
fn hcn_proc(symbol: &std::ffi::CStr) -> Option<unsafe extern "system" fn() -> isize> {
    system32_proc("computenetwork.dll", symbol)
}

/// A function of a System32 DLL, loaded at run time from System32 only (see [`hcn_proc`]).
pub(super) fn system32_proc(dll: &str, symbol: &std::ffi::CStr) -> Option<unsafe extern "system" fn() -> isize> {
    let dll = wide(dll);
    // SAFETY: a NUL-terminated library name and symbol name; the library stays loaded for the life of the
    // process.
    unsafe {
        let lib = LoadLibraryExW(dll.as_ptr(), std::ptr::null_mut(), LOAD_LIBRARY_SEARCH_SYSTEM32);
        if lib.is_null() {
            return None;
        }
        GetProcAddress(lib, symbol.as_ptr().cast())
    }
}

fn hcn() -> Option<(HcnEnumerateNetworks, HcnDeleteNetwork)> {
    let enumerate = hcn_proc(c"HcnEnumerateNetworks")?;
    let delete = hcn_proc(c"HcnDeleteNetwork")?;
    // SAFETY: the symbols have the signatures declared above (as in windows-sys).
    unsafe {
        Some((
            std::mem::transmute::<unsafe extern "system" fn() -> isize, HcnEnumerateNetworks>(enumerate),
            std::mem::transmute::<unsafe extern "system" fn() -> isize, HcnDeleteNetwork>(delete),
        ))
    }
}

/// The ids of the HNS networks named `name`.
fn networks_named(enumerate: HcnEnumerateNetworks, name: &str) -> Result<Vec<String>, HostError> {
    let filter = serde_json::json!({ "Name": name }).to_string();
    let query = serde_json::json!({ "SchemaVersion": { "Major": 2, "Minor": 0 }, "Filter": filter }).to_string();
    let q = wide(&query);
    let mut networks: windows_sys::core::PWSTR = std::ptr::null_mut();
    let mut record: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated query and two out pointers HCN allocates.
    let hr = unsafe { enumerate(q.as_ptr(), &mut networks, &mut record) };
    let record = take_wide(record);
    if crate::host::hcn_failed(hr, record.as_deref()) {
        return Err(hcn_error("list HNS networks named", name, hr, record));
    }
    Ok(take_wide(networks).and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
}

/// Creates the HNS network from its JSON definition unless a network of that name exists already (it is
/// kept: deleting it would cut every pod on it off). Returns whether it was created.
pub fn create_hns_network(name: &str, definition: &str) -> Result<bool, HostError> {
    let (Some((enumerate, _)), Some(create), Some(close)) =
        (hcn(), hcn_proc(c"HcnCreateNetwork"), hcn_proc(c"HcnCloseNetwork"))
    else {
        return Err(HostError::Unsupported {
            what: format!(
                "creating HNS network {name} without computenetwork.dll (enable the Containers feature: Install-WindowsFeature Containers, then reboot)"
            ),
        });
    };
    // SAFETY: the symbols have the signatures declared above (as in windows-sys).
    let (create, close) = unsafe {
        (
            std::mem::transmute::<unsafe extern "system" fn() -> isize, HcnCreateNetwork>(create),
            std::mem::transmute::<unsafe extern "system" fn() -> isize, HcnCloseNetwork>(close),
        )
    };
    if !networks_named(enumerate, name)?.is_empty() {
        return Ok(false);
    }
    let mut id: windows_sys::core::GUID = windows_sys::core::GUID::from_u128(0);
    // SAFETY: an out pointer to a GUID we own.
    let hr = unsafe { windows_sys::Win32::System::Com::CoCreateGuid(&mut id) };
    if hr < 0 {
        return Err(hcn_error("make an id for HNS network", name, hr, None));
    }
    let settings = wide(definition);
    let mut network: *mut std::ffi::c_void = std::ptr::null_mut();
    let mut record: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: a GUID and NUL-terminated JSON we own, out pointers for the handle and HCN's error record.
    let hr = unsafe { create(&id, settings.as_ptr(), &mut network, &mut record) };
    let record = take_wide(record);
    if crate::host::hcn_failed(hr, record.as_deref()) {
        return Err(hcn_error("create HNS network", name, hr, record));
    }
    if !network.is_null() {
        // SAFETY: closes the handle HcnCreateNetwork returned; the network itself stays.
        unsafe { close(network) };
    }
    Ok(true)
}

/// The subnets of the first HNS network named `name` (HcnOpenNetwork + HcnQueryNetworkProperties, as hcsshim's
/// `GetNetworkByName` reads one); `None` when there is none, or no HNS at all.
pub fn hns_network_subnets(name: &str) -> Result<Option<Vec<ipnet::IpNet>>, HostError> {
    let (Some((enumerate, _)), Some(open), Some(query), Some(close)) =
        (hcn(), hcn_proc(c"HcnOpenNetwork"), hcn_proc(c"HcnQueryNetworkProperties"), hcn_proc(c"HcnCloseNetwork"))
    else {
        return Ok(None);
    };
    // SAFETY: the symbols have the signatures declared above (as in windows-sys).
    let (open, query, close) = unsafe {
        (
            std::mem::transmute::<unsafe extern "system" fn() -> isize, HcnOpenNetwork>(open),
            std::mem::transmute::<unsafe extern "system" fn() -> isize, HcnQueryNetworkProperties>(query),
            std::mem::transmute::<unsafe extern "system" fn() -> isize, HcnCloseNetwork>(close),
        )
    };
    let Some(guid) = networks_named(enumerate, name)?.first().and_then(|id| parse_guid(id)) else {
        return Ok(None);
    };
    let mut network: *mut std::ffi::c_void = std::ptr::null_mut();
    let mut record: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: a GUID we own and out pointers for the handle and HCN's error record.
    let hr = unsafe { open(&guid, &mut network, &mut record) };
    let record = take_wide(record);
    if crate::host::hcn_failed(hr, record.as_deref()) {
        return Err(hcn_error("open HNS network", name, hr, record));
    }
    let q = wide(&serde_json::json!({ "SchemaVersion": { "Major": 2, "Minor": 0 } }).to_string());
    let mut props: windows_sys::core::PWSTR = std::ptr::null_mut();
    let mut record: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: the handle opened above, a NUL-terminated query and out pointers HCN allocates.
    let hr = unsafe { query(network, q.as_ptr(), &mut props, &mut record) };
    // SAFETY: closes the handle HcnOpenNetwork returned.
    unsafe { close(network) };
    let (props, record) = (take_wide(props), take_wide(record));
    if crate::host::hcn_failed(hr, record.as_deref()) {
        return Err(hcn_error("read HNS network", name, hr, record));
    }
    Ok(Some(crate::host::hns_subnets(&props.unwrap_or_default())))
}

/// Deletes every HNS network with this name; none (or no HNS at all) is fine.
pub fn delete_hns_network(name: &str) -> Result<(), HostError> {
    let Some((hcn_enumerate_networks, hcn_delete_network)) = hcn() else {
        tracing::debug!("computenetwork.dll is not available: no HNS, so no network {name} to delete");
        return Ok(());
    };
    let ids = networks_named(hcn_enumerate_networks, name)?;
    for id in ids {
        let Some(guid) = parse_guid(&id) else { continue };
        let mut record: windows_sys::core::PWSTR = std::ptr::null_mut();
        // SAFETY: a GUID we own and an out pointer HCN allocates.
        let hr = unsafe { hcn_delete_network(&guid, &mut record) };
        let record = take_wide(record);
        if crate::host::hcn_failed(hr, record.as_deref()) {
            return Err(hcn_error("delete HNS network", name, hr, record));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;

    /// A computenetwork.dll planted beside the executable (any DLL will do: here a copy of System32's
    /// version.dll) is never loaded; only System32's copy would be, and wine has none.
    #[test]
    fn a_computenetwork_dll_beside_the_exe_is_never_loaded() {
        let system = std::path::PathBuf::from(std::env::var("SystemRoot").unwrap_or_else(|_| r"C:\windows".into()));
        let planted = std::env::current_exe().unwrap().with_file_name("computenetwork.dll");
        std::fs::copy(system.join("system32").join("version.dll"), &planted).unwrap();
        let found = hcn_proc(c"HcnEnumerateNetworks");
        let name = wide("computenetwork.dll");
        // SAFETY: a NUL-terminated module name; only asks whether it is loaded.
        let loaded = unsafe { !GetModuleHandleW(name.as_ptr()).is_null() };
        let _ = std::fs::remove_file(&planted);
        assert!(found.is_none() && !loaded, "the planted computenetwork.dll was loaded");
    }
}
