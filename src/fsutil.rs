//! Writing a path the user named (`ig image export IMAGE PATH`, the credentials file of
//! `ig login`, a detached instance's `--output-file`): what the path already is decides how.
//!
//! - absent, or a regular file: written to a temporary file beside it, then renamed over it, so
//!   readers never see half a file and a failed write leaves the old one;
//! - a FIFO or a character device (`/dev/null`, `/dev/stdout`, a pipe made with `mkfifo`):
//!   opened and written through; renaming over it would replace the device or pipe with a file
//!   (`/dev/null` becoming a root-only regular file, a FIFO's reader getting nothing);
//! - a symbolic link: followed, and the rules above apply to what it points at (the link stays,
//!   as `sed -i --follow-symlinks` and Docker's own config writer do); a link to nothing is
//!   refused rather than guessed at;
//! - a directory, block device or socket: refused, naming what it is.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutputPathError {
    /// `error` is not a `source`: the message already holds it, and the CLI prints sources
    /// after the message.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{path} is a {kind}: refusing to write into it")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("{path} is a symbolic link to {target}, which does not exist: not writing through it")]
    Dangling { path: PathBuf, target: PathBuf },
}

impl From<OutputPathError> for io::Error {
    fn from(e: OutputPathError) -> io::Error {
        match e {
            OutputPathError::Io { error, .. } => error,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutputPathError + '_ {
    move |error| OutputPathError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Where and how a user-named path is written, symbolic links followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Absent or a regular file: write beside it and rename over it.
    Replace(PathBuf),
    /// A FIFO or character device: open it and write through it.
    Through(PathBuf),
}

impl Target {
    pub fn path(&self) -> &Path {
        match self {
            Target::Replace(p) | Target::Through(p) => p,
        }
    }
}

/// Classifies `path` (see the module documentation).
pub fn resolve(path: &Path) -> Result<Target, OutputPathError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Target::Replace(path.to_path_buf()))
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let (path, meta) = if meta.file_type().is_symlink() {
        match std::fs::canonicalize(path) {
            Ok(target) => {
                let meta = std::fs::metadata(&target).map_err(io_err(&target))?;
                (target, meta)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let target = std::fs::read_link(path).map_err(io_err(path))?;
                return Err(OutputPathError::Dangling {
                    path: path.to_path_buf(),
                    target,
                });
            }
            Err(e) => return Err(io_err(path)(e)),
        }
    } else {
        (path.to_path_buf(), meta)
    };
    let ft = meta.file_type();
    let refuse = |kind| OutputPathError::Unsupported {
        path: path.clone(),
        kind,
    };
    if ft.is_file() {
        Ok(Target::Replace(path))
    } else if ft.is_fifo() || ft.is_char_device() {
        Ok(Target::Through(path))
    } else if ft.is_dir() {
        Err(refuse("directory"))
    } else if ft.is_block_device() {
        Err(refuse("block device"))
    } else if ft.is_socket() {
        Err(refuse("socket"))
    } else {
        Err(refuse("special file"))
    }
}

/// The permissions of a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0666 less the umask, as any tool creates files; a replaced file keeps its mode.
    Default,
    /// Exactly this mode, also when replacing (credentials: 0600).
    Fixed(u32),
}

enum Inner {
    Temp {
        tmp: tempfile::NamedTempFile,
        dest: PathBuf,
    },
    Through(File, PathBuf),
}

/// A file being written to a user-named path; [`OutputFile::commit`] finishes it. Dropped
/// without a commit, a temporary file is removed and the old file stays.
pub struct OutputFile {
    inner: Inner,
}

impl OutputFile {
    pub fn create(path: &Path, mode: Mode) -> Result<Self, OutputPathError> {
        let inner = match resolve(path)? {
            Target::Through(p) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(io_err(&p))?;
                Inner::Through(file, p)
            }
            Target::Replace(dest) => {
                let dir = dest
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let name = dest
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let initial = match mode {
                    Mode::Default => 0o666,
                    Mode::Fixed(m) => m,
                };
                // A missing directory is named as such (tempfile's error names its random file).
                std::fs::metadata(dir).map_err(io_err(dir))?;
                let tmp = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".tmp")
                    .permissions(std::fs::Permissions::from_mode(initial))
                    .tempfile_in(dir)
                    .map_err(io_err(dir))?;
                let existing = std::fs::metadata(&dest).ok();
                let file = tmp.as_file();
                match (mode, &existing) {
                    (Mode::Fixed(m), _) => file
                        .set_permissions(std::fs::Permissions::from_mode(m))
                        .map_err(io_err(tmp.path()))?,
                    (Mode::Default, Some(old)) => {
                        file.set_permissions(old.permissions())
                            .map_err(io_err(tmp.path()))?;
                    }
                    (Mode::Default, None) => {}
                }
                if let Some(old) = &existing {
                    // Keep the owner of a file root replaces; not being allowed to is no error.
                    let _ = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()));
                }
                Inner::Temp { tmp, dest }
            }
        };
        Ok(OutputFile { inner })
    }

    /// Syncs and renames the temporary file over the destination, or flushes a FIFO/device.
    pub fn commit(self) -> Result<(), OutputPathError> {
        match self.inner {
            Inner::Temp { tmp, dest } => {
                tmp.as_file().sync_all().map_err(io_err(&dest))?;
                tmp.persist(&dest).map_err(|e| OutputPathError::Io {
                    path: dest.clone(),
                    error: e.error,
                })?;
                Ok(())
            }
            Inner::Through(mut f, path) => f.flush().map_err(io_err(&path)),
        }
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Temp { tmp, .. } => tmp.write(buf),
            Inner::Through(f, _) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Temp { tmp, .. } => tmp.flush(),
            Inner::Through(f, _) => f.flush(),
        }
    }
}

/// Writes `bytes` to a user-named path by the rules above.
pub fn write(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), OutputPathError> {
    let mut out = OutputFile::create(path, mode)?;
    out.write_all(bytes).map_err(io_err(path))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn replaces_a_regular_file_keeping_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        write(&p, b"new", Mode::Default).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_ne!(
            meta.ino(),
            ino,
            "replaced by rename, not rewritten in place"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn fixed_mode_wins_over_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&p, b"secret", Mode::Fixed(0o600)).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn follows_a_symlink_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join("link");
        std::fs::write(&target, "old").unwrap();
        symlink(&target, &link).unwrap();
        write(&link, b"new", Mode::Default).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn refuses_a_dangling_symlink_and_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        symlink(dir.path().join("nothing"), &link).unwrap();
        let err = write(&link, b"x", Mode::Default).unwrap_err().to_string();
        assert!(err.contains("which does not exist"), "{err}");
        let err = write(dir.path(), b"x", Mode::Default)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("is a directory: refusing to write into it"),
            "{err}"
        );
    }

    #[test]
    fn writes_through_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut s = Vec::new();
                File::open(fifo).unwrap().read_to_end(&mut s).unwrap();
                let _ = tx.send(s);
            });
        }
        write(&fifo, b"through", Mode::Default).unwrap();
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got.expect("the reader got nothing"), b"through");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }
}
