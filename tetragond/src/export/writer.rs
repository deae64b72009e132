//! The events file: whole lines appended (mode 0600), rotated by size into
//! numbered backups (`events.log.1` newest), optionally gzipped.
//!
//! Lines are buffered and written in batches (one write per drain of the
//! ring buffer, or every 64 KiB); a line is never split between two writes
//! or two files, and rotation happens only between lines, so a reader never
//! sees a torn line and no line is lost across a rotation.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    thread::JoinHandle,
};

use flate2::{write::GzEncoder, Compression};

const FLUSH_AT: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a line would make the file bigger than this; 0: never.
    pub max_size_bytes: u64,
    /// Rotated files kept; the oldest beyond this is deleted.
    pub backups: u32,
    pub compress: bool,
}

/// Lines that could not be written, and why.
#[derive(Debug, thiserror::Error)]
#[error("writing {lines} event lines to {path}: {source}")]
pub struct WriteFailure {
    pub lines: u64,
    pub path: String,
    pub source: io::Error,
}

pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    /// Bytes in the file, buffered ones included.
    size: u64,
    buf: Vec<u8>,
    buffered_lines: u64,
    compressor: Option<JoinHandle<()>>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl RotatingFile {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            rotation,
            file,
            size,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            buffered_lines: 0,
            compressor: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (without its newline). Returns whether the file was
    /// rotated first.
    pub fn write_line(&mut self, line: &[u8]) -> Result<bool, WriteFailure> {
        let len = line.len() as u64 + 1;
        let mut rotated = false;
        if self.rotation.max_size_bytes > 0
            && self.size > 0
            && self.size + len > self.rotation.max_size_bytes
        {
            self.flush()?;
            self.rotate().map_err(|source| self.failure(1, source))?;
            rotated = true;
        }
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.buffered_lines += 1;
        self.size += len;
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(rotated)
    }

    /// Writes the buffered lines in one write; on failure they are counted
    /// in the error and discarded (the caller counts them as dropped).
    pub fn flush(&mut self) -> Result<(), WriteFailure> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buf);
        let lines = std::mem::take(&mut self.buffered_lines);
        let bytes = self.buf.len() as u64;
        self.buf.clear();
        result.map_err(|source| {
            self.size = self.size.saturating_sub(bytes);
            self.failure(lines, source)
        })
    }

    fn failure(&self, lines: u64, source: io::Error) -> WriteFailure {
        WriteFailure {
            lines,
            path: self.path.display().to_string(),
            source,
        }
    }

    fn backup(&self, n: u32, gz: bool) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}{}", if gz { ".gz" } else { "" }));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        // The previous compression renames events.log.1 away: let it finish
        // before the names shift (it only waits when rotations outrun gzip).
        if let Some(job) = self.compressor.take() {
            let _ = job.join();
        }
        let gz = self.rotation.compress;
        if self.rotation.backups == 0 {
            fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            let _ = fs::remove_file(self.backup(self.rotation.backups, gz));
            for n in (1..self.rotation.backups).rev() {
                fs::rename(self.backup(n, gz), self.backup(n + 1, gz)).or_else(ignore_missing)?;
            }
            fs::rename(&self.path, self.backup(1, false))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        if gz && self.rotation.backups > 0 {
            let (plain, packed) = (self.backup(1, false), self.backup(1, true));
            self.compressor = Some(std::thread::spawn(move || {
                if let Err(e) = gzip(&plain, &packed) {
                    tracing::error!("compressing {}: {e}", plain.display());
                }
            }));
        }
        Ok(())
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        let _ = self.flush();
        if let Some(job) = self.compressor.take() {
            let _ = job.join();
        }
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// `plain` to `packed` through a temporary name, then `plain` removed.
fn gzip(plain: &Path, packed: &Path) -> io::Result<()> {
    let mut tmp = packed.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut enc = GzEncoder::new(out, Compression::default());
    io::copy(&mut File::open(plain)?, &mut enc)?;
    enc.finish()?.sync_all()?;
    fs::rename(&tmp, packed)?;
    fs::remove_file(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::{io::Read, os::unix::fs::PermissionsExt};

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("tetragond-writer-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn lines_of(path: &Path) -> Vec<String> {
        let mut text = String::new();
        if path.extension().is_some_and(|e| e == "gz") {
            GzDecoder::new(File::open(path).expect("open"))
                .read_to_string(&mut text)
                .expect("gunzip");
        } else {
            text = fs::read_to_string(path).expect("read");
        }
        assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn rotates_keeps_backups_and_every_line() {
        let d = dir("plain");
        let path = d.join("events.log");
        let mut f = RotatingFile::open(
            &path,
            Rotation {
                max_size_bytes: 1000,
                backups: 3,
                compress: false,
            },
        )
        .expect("open");
        let mut rotations = 0;
        for i in 0..100 {
            rotations += usize::from(
                f.write_line(format!("line {i:04} {}", "x".repeat(40)).as_bytes())
                    .expect("write"),
            );
        }
        drop(f);
        assert!(rotations >= 4, "{rotations}");
        let mut all = vec![];
        for n in (1..=3).rev() {
            let b = d.join(format!("events.log.{n}"));
            assert!(fs::metadata(&b).expect("backup").len() <= 1000);
            all.extend(lines_of(&b));
        }
        assert!(!d.join("events.log.4").exists());
        all.extend(lines_of(&path));
        // The newest lines, in order, none missing between files.
        let first: usize = all[0][5..9].parse().expect("number");
        for (k, l) in all.iter().enumerate() {
            assert_eq!(l, &format!("line {:04} {}", first + k, "x".repeat(40)));
        }
        assert_eq!(first + all.len(), 100);
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn compressed_backups() {
        let d = dir("gz");
        let path = d.join("events.log");
        let mut f = RotatingFile::open(
            &path,
            Rotation {
                max_size_bytes: 500,
                backups: 2,
                compress: true,
            },
        )
        .expect("open");
        for i in 0..30 {
            f.write_line(format!("{i:03} {}", "y".repeat(60)).as_bytes())
                .expect("write");
        }
        drop(f);
        let mut all = lines_of(&d.join("events.log.2.gz"));
        all.extend(lines_of(&d.join("events.log.1.gz")));
        all.extend(lines_of(&path));
        assert!(!d.join("events.log.1").exists());
        let first: usize = all[0][..3].parse().expect("number");
        assert_eq!(first + all.len(), 30);
        let mode = fs::metadata(d.join("events.log.1.gz"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn no_rotation_when_unlimited() {
        let d = dir("unlimited");
        let path = d.join("events.log");
        let mut f = RotatingFile::open(
            &path,
            Rotation {
                max_size_bytes: 0,
                backups: 1,
                compress: false,
            },
        )
        .expect("open");
        for _ in 0..1000 {
            assert!(!f.write_line(b"abc").expect("write"));
        }
        f.flush().expect("flush");
        assert_eq!(lines_of(&path).len(), 1000);
    }
}
