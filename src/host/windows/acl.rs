//! The root dir's access control list: set once, when wkjoin creates the directory, before anything is in it.

use crate::host::HostError;
use std::path::{Path, PathBuf};
use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR,
};

/// Nothing inherited from the drive (`P`); SYSTEM and Administrators have full control, Users read and execute
/// (0x1200a9: FILE_GENERIC_READ | FILE_GENERIC_EXECUTE); all three inherited by every file and directory below.
pub const ROOT_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)";

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn failed(op: &'static str, path: &Path, code: u32) -> HostError {
    HostError::Io { op, path: PathBuf::from(path), source: std::io::Error::from_raw_os_error(code as i32) }
}

/// Gives `path` the protected root ACL ([`ROOT_SDDL`]).
pub fn protect_dir(path: &Path) -> Result<(), HostError> {
    let sddl = wide(ROOT_SDDL);
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated SDDL string and an out pointer the system allocates (freed with LocalFree below).
    if unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    } == 0
    {
        return Err(HostError::Io {
            op: "build the root ACL for",
            path: path.into(),
            source: std::io::Error::last_os_error(),
        });
    }
    let (mut present, mut defaulted) = (0, 0);
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `sd` is the valid descriptor made above; `dacl` points into it.
    unsafe { GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) };
    let name = wide(&path.to_string_lossy());
    // SAFETY: a NUL-terminated path and the DACL of `sd`, which lives until LocalFree.
    let code = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    // SAFETY: `sd` came from ConvertStringSecurityDescriptorToSecurityDescriptorW (LocalAlloc'd).
    unsafe { LocalFree(sd) };
    if code != 0 {
        return Err(failed("set the protected root ACL on", path, code));
    }
    Ok(())
}

/// A security descriptor's DACL in SDDL, as the system writes it.
#[cfg(test)]
fn dacl_sddl(sd: PSECURITY_DESCRIPTOR) -> Option<String> {
    use windows_sys::Win32::Security::Authorization::ConvertSecurityDescriptorToStringSecurityDescriptorW;
    let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: `sd` is a valid descriptor; the string is allocated by the system and freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 || text.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string the call above returned, LocalAlloc'd and freed here.
    unsafe {
        let s = super::scm::read_wide(text);
        LocalFree(text.cast());
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root ACL parses as a security descriptor (advapi32's SDDL parser, wine's here) and reads back as
    /// the same protected DACL: three inherited grants, nothing from the parent.
    #[test]
    fn the_root_acl_is_a_protected_dacl_the_system_parses() {
        let sddl = wide(ROOT_SDDL);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a NUL-terminated string and an out pointer, freed below.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        assert_ne!(ok, 0, "{ROOT_SDDL} does not parse: {}", std::io::Error::last_os_error());
        let back = dacl_sddl(sd);
        // SAFETY: LocalAlloc'd by the parser.
        unsafe { LocalFree(sd) };
        let back = back.expect("the descriptor converts back to SDDL");
        assert!(back.starts_with("D:P"), "{back}");
        for ace in ["(A;OICI;FA;;;SY)", "(A;OICI;FA;;;BA)", "(A;OICI;0x1200a9;;;BU)"] {
            assert!(back.contains(ace), "{ace} missing from {back}");
        }
        assert_eq!(back.matches("(A;").count(), 3, "{back}");
    }

    /// SetNamedSecurityInfoW takes the ACL on a directory, again on a re-run, and a missing one is an error. Wine
    /// keeps no DACL on a file (it maps one to unix mode bits), so what NTFS then holds is not checked here; that
    /// the lock calls this on a root it creates is `cli::a_root_wkjoin_creates_gets_its_own_mode_whatever_the_umask`.
    #[test]
    fn the_acl_is_set_on_a_directory_and_a_missing_one_fails() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("k");
        let lock = crate::host::lock::lock_root(&root, "test").unwrap();
        drop(lock);
        assert!(root.is_dir());
        protect_dir(&root).expect("the ACL is set again without error");
        let missing = parent.path().join("missing");
        assert!(protect_dir(&missing).is_err(), "a missing directory must fail, not pass silently");
    }
}
