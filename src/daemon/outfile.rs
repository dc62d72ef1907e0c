//! A detached instance's JSON-lines file, rotated by size: `PATH`, then `PATH.1` … `PATH.N`
//! (newest first, logrotate's numbering).
//!
//! What `PATH` is decides how, by [`crate::fsutil`]'s rules: a regular file (or a new one) is
//! appended to and rotated; a FIFO or character device (`/dev/null`, `/dev/stdout`) is written
//! through and never rotated (renaming it would move the device node away); a symbolic link
//! is followed and the file it points at is rotated beside it, the link staying as it is.
//!
//! Our own rather than the `file-rotate` crate: that one panics when the directory cannot be
//! created and silently drops writes when the file cannot be opened; an instance must report
//! both, and never lose events without saying so.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, Target};

pub struct RotatingFile {
    path: PathBuf,
    /// Bytes; 0: never rotate.
    max_size: u64,
    max_backups: u32,
    /// False for a FIFO or device.
    rotatable: bool,
    file: File,
    size: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Opens a FIFO or device for writing without waiting for a FIFO's reader (the daemon must not
/// hang on one that has none), then makes the descriptor blocking as usual.
fn open_through(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => io::Error::new(
                e.kind(),
                format!("{} is a FIFO that nobody reads", path.display()),
            ),
            _ => e,
        })?;
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a valid descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: same descriptor, flags as read.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

impl RotatingFile {
    /// Opens (appending to) `path`; its directory must exist.
    pub fn open(path: &Path, max_size: u64, max_backups: u32) -> io::Result<Self> {
        let (path, rotatable, file) = match fsutil::resolve(path)? {
            Target::Replace(p) => {
                let file = open_append(&p)?;
                (p, true, file)
            }
            Target::Through(p) => {
                let file = open_through(&p)?;
                (p, false, file)
            }
        };
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            max_size,
            max_backups,
            rotatable,
            file,
            size,
        })
    }

    fn backup(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_backups == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            match std::fs::remove_file(self.backup(self.max_backups)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..self.max_backups).rev() {
                match std::fs::rename(self.backup(n), self.backup(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.backup(1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    /// Writes all of `data` to one file: a line is never split across two.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.rotatable
            && self.max_size > 0
            && self.size > 0
            && self.size + data.len() as u64 > self.max_size
        {
            self.rotate()?;
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn rotates_whole_lines_and_keeps_n_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        let mut f = RotatingFile::open(&path, 25, 2).unwrap();
        for i in 0..10 {
            f.write_all(format!("{{\"n\":{i}}}\n").as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        // 8 bytes a line: three lines a file.
        assert_eq!(read(&path), "{\"n\":9}\n");
        assert_eq!(
            read(&dir.path().join("events.json.1")),
            "{\"n\":6}\n{\"n\":7}\n{\"n\":8}\n"
        );
        assert_eq!(
            read(&dir.path().join("events.json.2")),
            "{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n"
        );
        assert!(!dir.path().join("events.json.3").exists());
    }

    #[test]
    fn a_fifo_is_written_through_never_rotated() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("events.fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = RotatingFile::open(&fifo, 8, 1).err().unwrap().to_string();
        assert!(err.ends_with("is a FIFO that nobody reads"), "{err}");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut s = String::new();
                File::open(fifo).unwrap().read_to_string(&mut s).unwrap();
                s
            })
        };
        let mut f = loop {
            match RotatingFile::open(&fifo, 8, 1) {
                Ok(f) => break f,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        };
        for i in 0..3 {
            f.write_all(format!("{{\"n\":{i}}}\n").as_bytes()).unwrap();
        }
        drop(f);
        assert_eq!(reader.join().unwrap(), "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert!(!dir.path().join("events.fifo.1").exists());
    }

    #[test]
    fn a_symlink_stays_and_its_target_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        let link = dir.path().join("events.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        std::fs::write(&target, "").unwrap();
        let mut f = RotatingFile::open(&link, 8, 1).unwrap();
        for i in 0..2 {
            f.write_all(format!("{{\"n\":{i}}}\n").as_bytes()).unwrap();
        }
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "{\"n\":1}\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("real.json.1")).unwrap(),
            "{\"n\":0}\n"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        assert!(RotatingFile::open(Path::new("/nonexistent/dir/x.json"), 10, 1).is_err());
    }
}
