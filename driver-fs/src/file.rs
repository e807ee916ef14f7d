//! The on-disk record format and the file operations behind it.
//!
//! A record file is a 36-byte header, the key, then the value:
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `SESSFS01` |
//! | 8..16 | expiry, Unix milliseconds, little endian (0 = none); rewritten in place by touch |
//! | 16..32 | version, 128 random bits |
//! | 32..36 | key length, little endian |

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use session_core::{DriverError, Version, bytes::Bytes};

const MAGIC: &[u8; 8] = b"SESSFS01";
const HEADER_LEN: usize = 36;
const EXPIRY_OFFSET: u64 = 8;
const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) expires_at: Option<u64>,
    version: u128,
}

pub(crate) struct Record {
    pub(crate) header: Header,
    pub(crate) value: Bytes,
}

impl Header {
    pub(crate) fn new(expires_at: Option<u64>) -> Self {
        Self {
            expires_at,
            version: rand::random(),
        }
    }

    pub(crate) fn version(&self) -> Version {
        Version::new(format!("{:032x}", self.version))
    }

    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|t| now_ms >= t)
    }

    /// The header and key length, if `bytes` starts with a valid header.
    fn parse(bytes: &[u8]) -> Option<(Self, usize)> {
        let field = |range: std::ops::Range<usize>| bytes.get(range);
        if field(0..8)? != MAGIC {
            return None;
        }
        let expiry = u64::from_le_bytes(field(8..16)?.try_into().ok()?);
        let version = u128::from_le_bytes(field(16..32)?.try_into().ok()?);
        let key_len = u32::from_le_bytes(field(32..36)?.try_into().ok()?);
        Some((
            Self {
                expires_at: (expiry != 0).then_some(expiry),
                version,
            },
            usize::try_from(key_len).ok()?,
        ))
    }
}

impl Record {
    pub(crate) fn encode(header: &Header, key: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + key.len() + value.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&header.expires_at.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&header.version.to_le_bytes());
        // Keys are at most MAX_KEY_LEN (4096) bytes, checked before any write.
        out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(value);
        out
    }
}

fn not_found<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn corrupt(path: &Path) {
    tracing::warn!(path = %path.display(), "ignoring a corrupt session file");
}

/// Reads the whole record for `key`; `None` if missing or corrupt.
pub(crate) fn read(path: &Path, key: &str) -> Result<Option<Record>, DriverError> {
    let Some(bytes) = not_found(fs::read(path)).map_err(crate::io_error)? else {
        return Ok(None);
    };
    let Some((header, key_len)) = Header::parse(&bytes) else {
        corrupt(path);
        return Ok(None);
    };
    let key_end = HEADER_LEN + key_len;
    match bytes.get(HEADER_LEN..key_end) {
        Some(stored) if stored == key.as_bytes() => {}
        Some(_) => return Err(collision()),
        None => {
            corrupt(path);
            return Ok(None);
        }
    }
    let value = Bytes::from(bytes).slice(key_end..);
    Ok(Some(Record { header, value }))
}

fn collision() -> DriverError {
    DriverError::permanent("two keys hash to one file name (SHA-256 collision)", None)
}

/// Reads the header and key of a record file; `None` if missing or corrupt.
fn read_prefix(path: &Path) -> Result<Option<(Header, Vec<u8>)>, DriverError> {
    let Some(mut file) = not_found(File::open(path)).map_err(crate::io_error)? else {
        return Ok(None);
    };
    let mut head = [0u8; HEADER_LEN];
    if file.read_exact(&mut head).is_err() {
        corrupt(path);
        return Ok(None);
    }
    let Some((header, key_len)) = Header::parse(&head) else {
        corrupt(path);
        return Ok(None);
    };
    if key_len > crate::MAX_KEY_LEN {
        corrupt(path);
        return Ok(None);
    }
    let mut key = vec![0u8; key_len];
    if file.read_exact(&mut key).is_err() {
        corrupt(path);
        return Ok(None);
    }
    Ok(Some((header, key)))
}

/// The header of the record for `key`, without reading its value.
pub(crate) fn read_header(path: &Path, key: &str) -> Result<Option<Header>, DriverError> {
    match read_prefix(path)? {
        Some((header, stored)) if stored == key.as_bytes() => Ok(Some(header)),
        Some(_) => Err(collision()),
        None => Ok(None),
    }
}

/// The header and key of a record file, for listing and sweeping.
pub(crate) fn read_key(path: &Path) -> Result<Option<(Header, String)>, DriverError> {
    Ok(
        read_prefix(path)?.and_then(|(header, key)| match String::from_utf8(key) {
            Ok(key) => Some((header, key)),
            Err(_) => {
                corrupt(path);
                None
            }
        }),
    )
}

/// Writes `bytes` to a temporary file in `dir` and renames it to `path`.
pub(crate) fn write_atomically(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    durable: bool,
) -> io::Result<()> {
    let temp = dir.join(format!("{TEMP_PREFIX}{:032x}", rand::random::<u128>()));
    let result = (|| {
        let mut file = private_file().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&temp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Rewrites the expiry field of an existing record in place.
pub(crate) fn write_expiry(path: &Path, expires_at: Option<u64>, durable: bool) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(EXPIRY_OFFSET))?;
    file.write_all(&expires_at.unwrap_or(0).to_le_bytes())?;
    if durable {
        file.sync_data()?;
    }
    Ok(())
}

/// Deletes a record file; a missing one is fine.
pub(crate) fn remove(path: &Path, dir: &Path, durable: bool) -> io::Result<()> {
    if not_found(fs::remove_file(path))?.is_some() && durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Record files of one shard directory (temporary and lock files excluded).
pub(crate) fn records_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(entries) = not_found(fs::read_dir(dir))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Deletes temporary files older than `age` (left by a crash mid-write).
pub(crate) fn remove_stale_temps(dir: &Path, age: Duration) -> io::Result<usize> {
    let Some(entries) = not_found(fs::read_dir(dir))? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|elapsed| elapsed >= age);
        if old && not_found(fs::remove_file(entry.path()))?.is_some() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates a directory (and parents) readable by the owner only.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Opens (creating) a shard's lock file.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    private_file()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn private_file() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_junk() {
        let h = Header::new(Some(42));
        let bytes = Record::encode(&h, "key", b"value");
        assert_eq!(Header::parse(&bytes), Some((h, 3)));
        assert_eq!(Header::parse(&bytes[..35]), None);
        assert_eq!(
            Header::parse(
                b"SESSFS02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
            ),
            None
        );
        assert_eq!(Header::parse(b""), None);
        assert_ne!(Header::new(None).version(), Header::new(None).version());
    }

    #[test]
    fn corrupt_files_read_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        for junk in [
            &b""[..],
            b"SESSFS01",
            b"garbage that is long enough to have a header!!",
        ] {
            fs::write(&path, junk).unwrap();
            assert!(read(&path, "k").unwrap().is_none());
            assert!(read_header(&path, "k").unwrap().is_none());
            assert!(read_key(&path).unwrap().is_none());
        }
    }
}
