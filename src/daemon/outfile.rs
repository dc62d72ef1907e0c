//! A detached instance's JSON-lines file, rotated by size: `PATH`, then `PATH.1` … `PATH.N`
//! (newest first, logrotate's numbering).
//!
//! Our own rather than the `file-rotate` crate: that one panics when the directory cannot be
//! created and silently drops writes when the file cannot be opened; an instance must report
//! both, and never lose events without saying so.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    /// Bytes; 0: never rotate.
    max_size: u64,
    max_backups: u32,
    file: File,
    size: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl RotatingFile {
    /// Opens (appending to) `path`; its directory must exist.
    pub fn open(path: &Path, max_size: u64, max_backups: u32) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_size,
            max_backups,
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
        if self.max_size > 0 && self.size > 0 && self.size + data.len() as u64 > self.max_size {
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
    fn a_missing_directory_is_an_error() {
        assert!(RotatingFile::open(Path::new("/nonexistent/dir/x.json"), 10, 1).is_err());
    }
}
