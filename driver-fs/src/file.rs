//! The on-disk record format and the file operations behind it.
//!
//! A record file holds one key and up to two copies ("slots") of its record, so that an
//! update can be written in place into the slot not currently in use: no new file, no rename,
//! no freed blocks. (Replacing a file by rename costs ~20× more than an in-place write on
//! ext4, whose `auto_da_alloc` flushes the new file's data on that pattern.) Each slot carries
//! a sequence number and a checksum over the key and its contents; a reader takes the valid
//! slot with the highest sequence, so a write torn by a crash, or one a reader catches half
//! done, leaves the previous record readable.
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `SESSFS02` |
//! | 8..12 | slot capacity in bytes, little endian |
//! | 12..16 | slot count (2, or 1 for records too large to keep twice) |
//! | 16..20 | key length |
//! | 20.. | the key, then the slots |
//!
//! A slot is its sequence number (u64, 0 = never written), the body length (u32), the first 16
//! bytes of SHA-256(key, sequence, length, body), then the body: the shared
//! [`ValueHeader`] (expiry in Unix milliseconds, 0 = none; a random 64-bit write id, which is
//! the version), then the value. A record that outgrows its slot,
//! and any record of a one-slot file, is written to a new file renamed over the old one.
//!
//! Files of the previous format (`SESSFS01`: one record, replaced by rename) are still read;
//! their first update rewrites them in this format.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    ops::Range,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use session_kit_core::driver::ValueHeader;
use session_kit_core::{DriverError, bytes::Bytes};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"SESSFS02";
const FILE_HEADER_LEN: usize = 20;
const SLOT_HEADER_LEN: usize = 28;
/// The body starts with the shared [`ValueHeader`] (expiry, write id).
const BODY_HEADER_LEN: usize = ValueHeader::LEN;
/// The smallest slot: a session of ~200 bytes fits without a rewrite as it grows.
const MIN_SLOT: usize = 256;
/// Records whose slot would exceed this are kept once (one slot, rewritten by rename): keeping
/// large values twice would double their disk use for little gain.
const MAX_TWO_SLOT: usize = 64 * 1024;

const LEGACY_MAGIC: &[u8; 8] = b"SESSFS01";
const LEGACY_HEADER_LEN: usize = 36;

const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) header: ValueHeader,
    pub(crate) value: Bytes,
}

/// How a file's slots are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Offset of slot 0.
    start: usize,
    cap: usize,
    slots: usize,
}

impl Layout {
    /// The layout of a new file for `key` whose record needs `slot_len` bytes.
    fn for_record(key: &str, slot_len: usize) -> Self {
        let (cap, slots) = if slot_len <= MAX_TWO_SLOT {
            (slot_len.next_power_of_two().max(MIN_SLOT), 2)
        } else {
            (slot_len, 1)
        };
        Self {
            start: FILE_HEADER_LEN + key.len(),
            cap,
            slots,
        }
    }

    fn offset(&self, slot: usize) -> usize {
        self.start + slot * self.cap
    }
}

/// The record a file currently holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Current {
    header: ValueHeader,
    /// Where the value is in the file's bytes.
    value: Range<usize>,
    /// The slot it is in (`None` in a legacy file).
    slot: Option<usize>,
}

/// What the bytes of a record file say (positions in those bytes).
#[derive(Debug)]
struct View {
    key: Range<usize>,
    /// `None` for a legacy file.
    layout: Option<Layout>,
    /// `None` while no slot is valid: a file being created, or one torn by a crash.
    current: Option<Current>,
    /// The sequence number the next in-place write uses.
    next_seq: u64,
}

fn le_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let raw = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
    usize::try_from(raw).ok()
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn checksum(key: &[u8], seq: u64, body: &[u8]) -> [u8; 16] {
    let mut hash = Sha256::new();
    hash.update(key);
    hash.update(seq.to_le_bytes());
    // Bodies are at most a slot (u32) long: MAX_VALUE_SIZE is 16 MiB.
    hash.update(u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    hash.update(body);
    let digest = hash.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl View {
    /// `None` if `bytes` does not start with a complete header of either format.
    fn parse(bytes: &[u8]) -> Option<Self> {
        match bytes.get(0..8)? {
            m if m == MAGIC => Self::parse_slotted(bytes),
            m if m == LEGACY_MAGIC => Self::parse_legacy(bytes),
            _ => None,
        }
    }

    fn parse_slotted(bytes: &[u8]) -> Option<Self> {
        let (cap, slots, key_len) = (le_u32(bytes, 8)?, le_u32(bytes, 12)?, le_u32(bytes, 16)?);
        if !(1..=2).contains(&slots) || cap < SLOT_HEADER_LEN + BODY_HEADER_LEN {
            return None;
        }
        let key_range = FILE_HEADER_LEN..FILE_HEADER_LEN + key_len;
        let key = bytes.get(key_range.clone())?;
        let layout = Layout {
            start: FILE_HEADER_LEN + key_len,
            cap,
            slots,
        };
        let mut current: Option<(u64, Current)> = None;
        let mut max_seq = 0;
        for slot in 0..slots {
            let at = layout.offset(slot);
            let Some(seq) = le_u64(bytes, at) else {
                continue;
            };
            max_seq = max_seq.max(seq);
            if seq == 0 || current.as_ref().is_some_and(|(s, _)| *s > seq) {
                continue;
            }
            let Some(len) = le_u32(bytes, at + 8) else {
                continue;
            };
            if len < BODY_HEADER_LEN || SLOT_HEADER_LEN + len > cap {
                continue;
            }
            let body_at = at + SLOT_HEADER_LEN;
            let (Some(sum), Some(body)) = (
                bytes.get(at + 12..at + SLOT_HEADER_LEN),
                bytes.get(body_at..body_at + len),
            ) else {
                continue;
            };
            if sum != checksum(key, seq, body) {
                continue;
            }
            let header = ValueHeader::parse(body).ok()?;
            current = Some((
                seq,
                Current {
                    header,
                    value: body_at + BODY_HEADER_LEN..body_at + len,
                    slot: Some(slot),
                },
            ));
        }
        Some(Self {
            key: key_range,
            layout: Some(layout),
            current: current.map(|(_, c)| c),
            next_seq: max_seq.saturating_add(1),
        })
    }

    fn parse_legacy(bytes: &[u8]) -> Option<Self> {
        let expiry = le_u64(bytes, 8)?;
        // A 128-bit version; its low 64 bits serve as the write id until the first rewrite.
        let write_id = le_u64(bytes, 16)?;
        let key_end = LEGACY_HEADER_LEN.checked_add(le_u32(bytes, 32)?)?;
        if key_end > bytes.len() {
            return None;
        }
        Some(Self {
            key: LEGACY_HEADER_LEN..key_end,
            layout: None,
            current: Some(Current {
                header: ValueHeader {
                    expires_at: (expiry != 0).then_some(expiry),
                    write_id,
                },
                value: key_end..bytes.len(),
                slot: None,
            }),
            next_seq: 1,
        })
    }

    /// The current record, checked to belong to `key` (`bytes` are the ones parsed).
    fn current_for(&self, bytes: &[u8], key: &str) -> Result<Option<&Current>, DriverError> {
        // A valid slot's checksum covers the stored key, so this compares trusted bytes.
        if self.current.is_some() && bytes.get(self.key.clone()) != Some(key.as_bytes()) {
            return Err(collision());
        }
        Ok(self.current.as_ref())
    }
}

/// What reading a record file found.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    /// No such file.
    Missing,
    /// A file without a readable record: being created or rewritten right now (a reader can
    /// catch both halves of a write in progress), or torn by a crash. Read again under the
    /// shard lock to tell which.
    Unsettled,
    /// The current record.
    Found(T),
}

fn not_found<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn corrupt(path: &Path) {
    tracing::warn!(path = %path.display(), "ignoring a corrupt session file");
}

fn collision() -> DriverError {
    DriverError::permanent("two keys hash to one file name (SHA-256 collision)", None)
}

/// Reads the current record for `key`.
pub(crate) fn read(path: &Path, key: &str) -> Result<Lookup<Record>, DriverError> {
    let Some(bytes) = not_found(fs::read(path)).map_err(crate::error::io_error)? else {
        return Ok(Lookup::Missing);
    };
    let found = match View::parse(&bytes) {
        None => None,
        Some(view) => view
            .current_for(&bytes, key)?
            .map(|c| (c.header, c.value.clone())),
    };
    Ok(match found {
        None => Lookup::Unsettled,
        Some((header, value)) => Lookup::Found(Record {
            header,
            value: Bytes::from(bytes).slice(value),
        }),
    })
}

/// Reads the key and current header of a record file, for listing and sweeping.
pub(crate) fn read_key(path: &Path) -> Result<Lookup<(ValueHeader, String)>, DriverError> {
    let Some(bytes) = not_found(fs::read(path)).map_err(crate::error::io_error)? else {
        return Ok(Lookup::Missing);
    };
    let Some(view) = View::parse(&bytes) else {
        return Ok(Lookup::Unsettled);
    };
    let Some(current) = &view.current else {
        return Ok(Lookup::Unsettled);
    };
    Ok(match std::str::from_utf8(&bytes[view.key.clone()]) {
        Ok(key) => Lookup::Found((current.header, key.to_owned())),
        Err(_) => {
            corrupt(path);
            Lookup::Missing
        }
    })
}

/// A record file opened for writing, with what it held. Used under the shard lock only.
pub(crate) struct Opened {
    file: Option<File>,
    bytes: Vec<u8>,
    /// `bytes` parsed once (checksums included); `None` without a file or a readable header.
    view: Option<View>,
}

impl Opened {
    /// Opens the file at `path` (if any) and reads it.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let Some(mut file) = not_found(OpenOptions::new().read(true).write(true).open(path))?
        else {
            return Ok(Self {
                file: None,
                bytes: Vec::new(),
                view: None,
            });
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let view = View::parse(&bytes);
        Ok(Self {
            file: Some(file),
            bytes,
            view,
        })
    }

    /// The current record's header and value; `None` if there is no file or no valid record.
    pub(crate) fn current(&self, key: &str) -> Result<Option<(ValueHeader, &[u8])>, DriverError> {
        let Some(view) = &self.view else {
            return Ok(None);
        };
        Ok(view
            .current_for(&self.bytes, key)?
            .and_then(|c| Some((c.header, self.bytes.get(c.value.clone())?))))
    }

    /// Whether the file exists but holds no valid record (a crash left it torn).
    pub(crate) fn is_corrupt(&self) -> bool {
        self.file.is_some() && self.view.as_ref().is_none_or(|v| v.current.is_none())
    }

    /// Writes a new record for `key`: in place into the slot not in use when the file has
    /// one that fits, otherwise as a new file.
    pub(crate) fn write(
        self,
        dir: &Path,
        path: &Path,
        key: &str,
        header: &ValueHeader,
        value: &[u8],
        durable: bool,
    ) -> io::Result<()> {
        let body = header.wrap(value);
        if let (Some(mut file), Some(view)) = (self.file.as_ref(), self.view.as_ref())
            && let (
                Some(layout),
                Some(Current {
                    slot: Some(slot), ..
                }),
            ) = (view.layout, &view.current)
            && layout.slots == 2
            && SLOT_HEADER_LEN + body.len() <= layout.cap
            && self.bytes.get(view.key.clone()) == Some(key.as_bytes())
        {
            let mut out = Vec::with_capacity(SLOT_HEADER_LEN + body.len());
            encode_slot(&mut out, key, view.next_seq, &body);
            let offset = u64::try_from(layout.offset(1 - slot)).unwrap_or(u64::MAX);
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(&out)?;
            if durable {
                file.sync_data()?;
            }
            return Ok(());
        }
        let bytes = encode_file(key, &body);
        if self.file.is_none() {
            // Nothing to replace: write the new file in place (a reader that catches it half
            // written sees no valid slot yet and reads again under the lock this write holds).
            match create_new(dir, path, &bytes, durable) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                result => return result,
            }
        }
        write_atomically(dir, path, &bytes, durable)
    }
}

/// A slot holding `body` (a [`ValueHeader`] and the value) under sequence number `seq`.
fn encode_slot(out: &mut Vec<u8>, key: &str, seq: u64, body: &[u8]) {
    out.extend_from_slice(&seq.to_le_bytes());
    // Values are at most MAX_VALUE_SIZE (16 MiB), checked before any write.
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&checksum(key.as_bytes(), seq, body));
    out.extend_from_slice(body);
}

/// A whole new file: header, key, the record in slot 0, slot 1 (if any) empty.
fn encode_file(key: &str, body: &[u8]) -> Vec<u8> {
    let layout = Layout::for_record(key, SLOT_HEADER_LEN + body.len());
    let mut out = Vec::with_capacity(layout.offset(layout.slots));
    out.extend_from_slice(MAGIC);
    for n in [layout.cap, layout.slots, key.len()] {
        // Keys are at most MAX_KEY_LEN (4096) bytes and slots at most ~16 MiB.
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }
    out.extend_from_slice(key.as_bytes());
    encode_slot(&mut out, key, 1, body);
    // Slots are allocated in full now, so that later in-place writes never extend the file.
    out.resize(layout.offset(layout.slots), 0);
    out
}

fn create_new(dir: &Path, path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut file = private_file().write(true).create_new(true).open(path)?;
    let result = (|| {
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Writes `bytes` to a temporary file in `dir` and renames it to `path`.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
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

    fn found(read: Lookup<Record>) -> (ValueHeader, Bytes) {
        match read {
            Lookup::Found(r) => (r.header, r.value),
            other => panic!("expected a record, got {other:?}"),
        }
    }

    fn put(dir: &Path, path: &Path, key: &str, value: &[u8]) -> ValueHeader {
        let header = ValueHeader::new(None);
        Opened::open(path)
            .unwrap()
            .write(dir, path, key, &header, value, false)
            .unwrap();
        header
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    #[test]
    fn updates_alternate_slots_in_place_and_keep_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let first = put(dir.path(), &path, "k", b"one");
        assert_eq!(
            found(read(&path, "k").unwrap()),
            (first, Bytes::from("one"))
        );
        let len = file_len(&path);
        assert_eq!(len, (FILE_HEADER_LEN + 1 + 2 * MIN_SLOT) as u64);
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());
        for i in 0..5 {
            let value = format!("value {i}");
            let header = put(dir.path(), &path, "k", value.as_bytes());
            assert_eq!(
                found(read(&path, "k").unwrap()),
                (header, Bytes::from(value))
            );
            let bytes = fs::read(&path).unwrap();
            let view = View::parse(&bytes).unwrap();
            assert_eq!(view.current.unwrap().slot, Some((i + 1) % 2));
            assert_eq!(view.next_seq, i as u64 + 3);
        }
        assert_eq!(file_len(&path), len, "written in place");
        #[cfg(unix)]
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
            inode,
            "the same file"
        );
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let old = put(dir.path(), &path, "k", b"old");
        put(dir.path(), &path, "k", b"new");
        // Tear the newer slot (slot 1): any byte of its body.
        let mut bytes = fs::read(&path).unwrap();
        let at = FILE_HEADER_LEN + 1 + MIN_SLOT + SLOT_HEADER_LEN + BODY_HEADER_LEN;
        bytes[at] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(found(read(&path, "k").unwrap()), (old, Bytes::from("old")));
        // The next write goes into the torn slot with a sequence above both.
        let next = put(dir.path(), &path, "k", b"next");
        assert_eq!(
            found(read(&path, "k").unwrap()),
            (next, Bytes::from("next"))
        );
    }

    #[test]
    fn a_record_that_outgrows_its_slot_gets_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        put(dir.path(), &path, "k", b"small");
        let big = vec![7u8; 1000];
        let header = put(dir.path(), &path, "k", &big);
        assert_eq!(found(read(&path, "k").unwrap()), (header, Bytes::from(big)));
        assert_eq!(file_len(&path), (FILE_HEADER_LEN + 1 + 2 * 2048) as u64);
        // Large records are kept once.
        let huge = vec![1u8; MAX_TWO_SLOT];
        let header = put(dir.path(), &path, "k", &huge);
        assert_eq!(
            found(read(&path, "k").unwrap()),
            (header, Bytes::from(huge.clone()))
        );
        assert_eq!(
            file_len(&path),
            (FILE_HEADER_LEN + 1 + SLOT_HEADER_LEN + BODY_HEADER_LEN + huge.len()) as u64
        );
        // And shrinking back keeps working.
        let header = put(dir.path(), &path, "k", b"tiny");
        assert_eq!(
            found(read(&path, "k").unwrap()),
            (header, Bytes::from("tiny"))
        );
    }

    #[test]
    fn legacy_files_are_read_and_converted_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let mut legacy = Vec::new();
        legacy.extend_from_slice(LEGACY_MAGIC);
        legacy.extend_from_slice(&42u64.to_le_bytes());
        legacy.extend_from_slice(&7u128.to_le_bytes());
        legacy.extend_from_slice(&1u32.to_le_bytes());
        legacy.extend_from_slice(b"k");
        legacy.extend_from_slice(b"legacy value");
        fs::write(&path, &legacy).unwrap();
        let (header, value) = found(read(&path, "k").unwrap());
        assert_eq!((header.expires_at, header.write_id), (Some(42), 7));
        assert_eq!(value, "legacy value");
        assert!(matches!(read_key(&path).unwrap(), Lookup::Found((_, k)) if k == "k"));
        let header = put(dir.path(), &path, "k", b"converted");
        assert_eq!(
            found(read(&path, "k").unwrap()),
            (header, Bytes::from("converted"))
        );
        assert_eq!(&fs::read(&path).unwrap()[..8], MAGIC);
    }

    #[test]
    fn junk_and_half_written_files_are_unsettled_and_other_keys_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        put(dir.path(), &path, "k", b"v");
        let whole = fs::read(&path).unwrap();
        for junk in [
            &b""[..],
            b"SESSFS02",
            b"SESSFS01",
            b"garbage that is long enough to have a header!!",
            // Cut inside the only record.
            &whole[..FILE_HEADER_LEN + 1 + SLOT_HEADER_LEN + 10],
        ] {
            fs::write(&path, junk).unwrap();
            let lookup = read(&path, "k").unwrap();
            assert!(matches!(lookup, Lookup::Unsettled), "{junk:?}: {lookup:?}");
            assert!(matches!(read_key(&path).unwrap(), Lookup::Unsettled));
            let opened = Opened::open(&path).unwrap();
            assert!(opened.is_corrupt());
            assert!(opened.current("k").unwrap().is_none());
        }
        fs::write(&path, &whole).unwrap();
        assert!(read(&path, "other").is_err(), "a different key collides");
        assert!(matches!(
            read(&dir.path().join("none"), "k").unwrap(),
            Lookup::Missing
        ));
    }
}
