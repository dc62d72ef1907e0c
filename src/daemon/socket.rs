//! The daemon's Unix socket: who may connect is decided by the file system. The directory is
//! `root:GROUP 0710` and the socket `root:GROUP 0660`, so only root and the group's members
//! reach it.

use std::ffi::CString;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use super::DaemonError;

/// A group by name or number (`--group`), from the system's group database; with
/// `HOST_ROOT` set, from the host's `/etc/group` (the socket is the host's to use).
pub fn group_id(group: &str) -> Result<u32, DaemonError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    if let Some(root) = crate::hostroot::root() {
        return crate::operators::users::NameTable::groups()
            .id(group)
            .ok_or_else(|| {
                DaemonError::Invalid(format!(
                    "no group {group:?} in the host's /etc/group (under {}; --group takes a group name or a number)",
                    root.display()
                ))
            });
    }
    let name = CString::new(group)
        .map_err(|_| DaemonError::Invalid(format!("invalid group name {group:?}")))?;
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives it and is large enough for
    // the usual group entries (ERANGE is reported, not overrun).
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(DaemonError::Invalid(format!(
            "no group {group:?} on this machine (--group takes a group name or a number)"
        )));
    }
    Ok(grp.gr_gid)
}

fn chown(path: &Path, gid: u32) -> Result<(), DaemonError> {
    std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            // Root without CAP_CHOWN (a container started with --cap-drop CHOWN) gets EPERM.
            DaemonError::Io {
                path: format!(
                    "{} (its owner is set to root:{gid}, which needs CAP_CHOWN)",
                    path.display()
                ),
                source: e,
            }
        } else {
            DaemonError::io(path.display())(e)
        }
    })
}

fn chmod(path: &Path, mode: u32) -> Result<(), DaemonError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(DaemonError::io(path.display()))
}

/// Binds the socket at `path` for `gid`. Another daemon answering there is an error; a stale
/// socket file (nobody answers) is removed first. Needs a tokio runtime.
pub fn bind(path: &Path, gid: u32) -> Result<tokio::net::UnixListener, DaemonError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| {
            DaemonError::Invalid(format!("--socket {}: no directory", path.display()))
        })?;
    std::fs::create_dir_all(dir).map_err(DaemonError::io(dir.display()))?;
    chown(dir, gid)?;
    chmod(dir, 0o710)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(DaemonError::Setup(format!(
                        "another ig daemon is serving on {} (stop it first, or use --socket)",
                        path.display()
                    )))
                }
                Err(_) => {
                    std::fs::remove_file(path).map_err(DaemonError::io(path.display()))?;
                }
            }
        }
        Ok(_) => {
            return Err(DaemonError::Setup(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )))
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(DaemonError::io(path.display()))?;
    chown(path, gid)?;
    chmod(path, 0o660)?;
    Ok(listener)
}
