//! Reading the small files a command is pointed at (a public key, a CA bundle, a config
//! file, a BIN table) with a size limit, so that a wrong path (`/dev/zero`, a FIFO, a
//! multi-gigabyte file) is refused with one sentence instead of taking all the memory;
//! and writing output files ([`output_target`], [`OutputWriter`]) without replacing a
//! symlink, a FIFO or a device node with a regular file.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};

/// Limit for a PEM public key (`verify --public-key`).
pub const PUBLIC_KEY_MAX: u64 = 64 * 1024;
/// Limit for a CA bundle (`verify --ca-cert`); system bundles are about 200 KB.
pub const CA_BUNDLE_MAX: u64 = 16 * 1024 * 1024;
/// Limit for a `serve --config` TOML file.
pub const CONFIG_MAX: u64 = 1024 * 1024;
/// Limit for a `serve --extra-bins` table (the built-in one is about 170 KB).
pub const BIN_TABLE_MAX: u64 = 64 * 1024 * 1024;

/// The whole file, or an `InvalidData` error when it is longer than `max` bytes.
pub fn read_limited(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB, the limit for this file", max / 1024),
        ));
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text (`read_to_string`'s error when it is not).
pub fn read_limited_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, max)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Longest physical line accepted (bytes), checked while reading so that a file
/// without line breaks cannot make the CSV reader buffer all of it.
pub const MAX_LINE_BYTES: u64 = 64 * 1024;

/// Fails a read with `InvalidData` once a physical line exceeds [`MAX_LINE_BYTES`]:
/// a CSV reader would otherwise buffer an endless "line" (`/dev/zero`, a binary file)
/// until memory runs out.
pub struct LineLimit<R> {
    inner: R,
    since_newline: u64,
}

impl<R> LineLimit<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        LineLimit {
            inner,
            since_newline: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.since_newline + i as u64 > MAX_LINE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "line too long",
                ));
            }
            self.since_newline = 0;
            rest = &rest[i + 1..];
        }
        self.since_newline += rest.len() as u64;
        if self.since_newline > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        Ok(n)
    }
}

/// Symlinks followed before giving up (Linux's own limit is 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// How an output path is written: the one decision shared by every command that
/// writes a whole output file (`registry generate`, `verify --output`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// A regular file, or none yet: written to a temporary file beside it and renamed
    /// over it. The path has its symlinks resolved, so a link stays a link and the
    /// file it points to gets the new content.
    Replace(PathBuf),
    /// An existing FIFO, character device (a terminal, `/dev/stdout` on a pipe), socket
    /// or the like: opened and written in place. No atomicity: a rename would replace
    /// the node itself with a regular file.
    InPlace(PathBuf),
}

/// Decides how `path` is written (see [`OutputTarget`]). A directory is an error.
pub fn output_target(path: &Path) -> std::io::Result<OutputTarget> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(m) => m,
            // Not there yet (also the target of a dangling link): created on rename.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(OutputTarget::Replace(current));
            }
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            // /proc's fd links (`/dev/stdout` → `/proc/self/fd/1` → `pipe:[123]`) name
            // no path to rename over: write what the kernel opens for them, in place
            // (so a shell's `>>` keeps appending).
            if current.starts_with("/proc") {
                return match std::fs::metadata(&current) {
                    Ok(m) if m.is_dir() => Err(is_a_directory()),
                    Ok(_) => Ok(OutputTarget::InPlace(current)),
                    Err(e) => Err(e),
                };
            }
            let target = std::fs::read_link(&current)?;
            // A relative target is relative to the link's directory.
            current = match current.parent() {
                Some(dir) => dir.join(target),
                None => target,
            };
            continue;
        }
        return if meta.is_file() {
            Ok(OutputTarget::Replace(current))
        } else if meta.is_dir() {
            Err(is_a_directory())
        } else {
            Ok(OutputTarget::InPlace(current))
        };
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Refuses `--resume` on an output that cannot be read back: a FIFO or device (see
/// [`OutputTarget::InPlace`]); opening a FIFO to read it would also wait for a writer
/// for ever. Call it before the output is first opened. The error is one sentence.
pub fn check_resumable(path: &Path) -> Result<(), String> {
    match output_target(path) {
        Ok(OutputTarget::Replace(_)) => Ok(()),
        Ok(OutputTarget::InPlace(_)) => Err(format!(
            "--resume must read {} back, and it is not a regular file (a FIFO or device); \
             drop --resume or choose a file as --output",
            path.display()
        )),
        Err(e) => Err(format!("cannot open {}: {e}", path.display())),
    }
}

fn is_a_directory() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory")
}

/// The temporary file [`OutputWriter::create`] writes beside `real` (a path from
/// [`OutputTarget::Replace`]) before renaming it over `real`: named in error messages,
/// since it is what fails to be created in a read-only directory.
pub fn temp_path(real: &Path) -> std::io::Result<PathBuf> {
    let mut name = real
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?
        .to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    Ok(real.with_file_name(name))
}

/// A whole output file being written as [`output_target`] decides: call
/// [`OutputWriter::commit`] at the end; dropped uncommitted, its temporary file is
/// removed and the output is left as it was (unless written in place).
#[derive(Debug)]
pub struct OutputWriter {
    file: File,
    /// `(temporary, final)` when the file is renamed into place on commit.
    rename: Option<(PathBuf, PathBuf)>,
    written: u64,
}

impl OutputWriter {
    /// Opens `path` for writing (see [`OutputTarget`]).
    pub fn create(path: &Path) -> std::io::Result<OutputWriter> {
        match output_target(path)? {
            OutputTarget::InPlace(node) => {
                // Append: a no-op for FIFOs and terminals, and it keeps a regular file
                // behind /proc/self/fd (a shell's `>>`) from being overwritten.
                let file = OpenOptions::new().append(true).open(node)?;
                Ok(OutputWriter {
                    file,
                    rename: None,
                    written: 0,
                })
            }
            OutputTarget::Replace(real) => {
                let tmp = temp_path(&real)?;
                // A leftover of a crashed run with the same pid; `create_new` then
                // refuses to follow anything planted under that name.
                let _ = std::fs::remove_file(&tmp);
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                // A new output may hold full card numbers (`verify --output` without
                // --mask-card): readable by its owner only, as `master.key` is.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let file = options.open(&tmp)?;
                // The replacement keeps the replaced file's permissions and, where this
                // user may set it, its group (best effort, as `cp -p` does).
                if let Ok(meta) = std::fs::metadata(&real) {
                    let _ = file.set_permissions(meta.permissions());
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::MetadataExt;
                        let _ = std::os::unix::fs::fchown(&file, None, Some(meta.gid()));
                    }
                }
                Ok(OutputWriter {
                    file,
                    rename: Some((tmp, real)),
                    written: 0,
                })
            }
        }
    }

    /// Whether the output is written in place (a FIFO, a terminal…), not renamed.
    pub fn in_place(&self) -> bool {
        self.rename.is_none()
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Syncs the file and renames it into place.
    pub fn commit(mut self) -> std::io::Result<()> {
        self.file.flush()?;
        match self.rename.take() {
            Some((tmp, real)) => {
                let renamed = self
                    .file
                    .sync_all()
                    .and_then(|()| std::fs::rename(&tmp, &real));
                if renamed.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                renamed
            }
            None => Ok(()),
        }
    }
}

impl Write for OutputWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for OutputWriter {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.rename.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broke: a new output (`verify --output` holds full card numbers unless masked)
    /// was created readable by everyone (0644 under the usual umask).
    #[cfg(unix)]
    #[test]
    fn a_new_output_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("results.csv");
        let mut writer = OutputWriter::create(&out).unwrap();
        writer.write_all(b"card\n").unwrap();
        writer.commit().unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }

    /// Broke: a replaced output lost its group (the new file had the process's).
    #[cfg(unix)]
    #[test]
    fn a_replaced_output_keeps_its_mode_and_group() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        std::fs::write(&out, "old\n").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
        let own_gid = std::fs::metadata(&out).unwrap().gid();
        // Another group: only a privileged user (CI runs as root) may set it.
        let other_gid = if own_gid == 1 { 2 } else { 1 };
        if let Err(e) = std::os::unix::fs::chown(&out, None, Some(other_gid)) {
            eprintln!("not checked: cannot give the test file another group ({e})");
            return;
        }
        let mut writer = OutputWriter::create(&out).unwrap();
        writer.write_all(b"new\n").unwrap();
        writer.commit().unwrap();
        let meta = std::fs::metadata(&out).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new\n");
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), other_gid);
    }

    #[test]
    fn an_endless_file_is_refused_at_the_limit() {
        let err = read_limited(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 1 KiB"), "{err}");
    }

    #[test]
    fn a_file_at_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, b"abcd").unwrap();
        assert_eq!(read_limited(&path, 4).unwrap(), b"abcd");
        assert!(read_limited(&path, 3).is_err());
        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert!(read_limited_text(&path, 4).is_err());
    }

    /// A FIFO at `path` (`mkfifo`: `unsafe` libc calls are forbidden here).
    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Broke: an output that was a symlink was replaced by a regular file (the
    /// temporary file was renamed over the link) and the file it pointed to kept its
    /// old content.
    #[cfg(unix)]
    #[test]
    fn an_output_symlink_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("real");
        std::fs::create_dir(&sub).unwrap();
        let target = sub.join("target.csv");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.csv");
        // A relative link, resolved against the link's directory.
        std::os::unix::fs::symlink("real/target.csv", &link).unwrap();
        assert_eq!(
            output_target(&link).unwrap(),
            OutputTarget::Replace(dir.path().join("real/target.csv"))
        );
        let mut out = OutputWriter::create(&link).unwrap();
        assert!(!out.in_place());
        out.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        // The temporary file was beside the real file, and is gone.
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        // A dangling link creates the file it names.
        let fresh = dir.path().join("fresh.csv");
        std::os::unix::fs::symlink(sub.join("new.csv"), &fresh).unwrap();
        let mut out = OutputWriter::create(&fresh).unwrap();
        out.write_all(b"x").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(sub.join("new.csv")).unwrap(), b"x");
        assert!(
            std::fs::symlink_metadata(&fresh)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    /// Broke: an output that was a FIFO (or a device such as `/dev/stdout`) was
    /// replaced by a regular file instead of being written.
    #[cfg(unix)]
    #[test]
    fn an_output_fifo_is_written_in_place_and_stays_a_fifo() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out.fifo");
        mkfifo(&fifo);
        assert_eq!(
            output_target(&fifo).unwrap(),
            OutputTarget::InPlace(fifo.clone())
        );
        // The reader first: opening a FIFO for writing waits for one.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut out = OutputWriter::create(&fifo).unwrap();
        assert!(out.in_place());
        out.write_all(b"name,card,status\n").unwrap();
        out.commit().unwrap();
        assert_eq!(reader.join().unwrap(), b"name,card,status\n");
        let meta = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_output_directory_is_refused_and_an_abandoned_output_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = output_target(dir.path()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
        let path = dir.path().join("out.csv");
        std::fs::write(&path, b"kept").unwrap();
        let mut out = OutputWriter::create(&path).unwrap();
        out.write_all(b"half").unwrap();
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
