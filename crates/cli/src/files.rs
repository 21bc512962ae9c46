//! Reading the small files a command is pointed at (a public key, a CA bundle, a config
//! file, a BIN table) with a size limit, so that a wrong path (`/dev/zero`, a FIFO, a
//! multi-gigabyte file) is refused with one sentence instead of taking all the memory.

use std::io::Read as _;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
