//! Backup, restore and wipe: every sled database the hub keeps, tree by tree, in one checked
//! archive file (`hearth-hub backup|restore|wipe`).
//!
//! A store is a `(name, folder)` pair in [`stores`]; the archive holds every tree of every
//! store, so a tree added later is carried without a change here. Derived indexes
//! ([`derived`]) are not archived: the hub rebuilds them from the stores on open.
//!
//! The file:
//!
//! ```text
//! hearth-backup 1\n                 the format's name and version, as text
//! {"format":"hearth-backup",...}\n  the header, one JSON line (see `Header`)
//! body                              'S' store, 'T' tree, 'E' entry records, then '.'
//! CRC-32 (4 bytes, big-endian)      of every byte before it
//! ```
//!
//! A record is its tag byte and then its fields: a name is a `u32` big-endian length and its
//! bytes; `S` has the store's name and a `u64` (the first id it may hand out after a
//! restore); `T` has the tree's name; `E` has the key and the value, each as a name is. The
//! header lists each store's trees with their entry counts, and the body must match it.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::HubConfig;
use crate::memory::store::{next_id, open_db, private_dir, reserve_ids};

/// The format's name, first in every archive.
pub const FORMAT: &str = "hearth-backup";
/// The archive format this build writes; it reads this one and older ones.
pub const FORMAT_VERSION: u32 = 1;

/// sled's default tree, which [`sled::Db::tree_names`] lists by this name.
const DEFAULT_TREE: &[u8] = b"__sled__default";
/// The longest header line read.
const MAX_HEADER: u64 = 1 << 20;
/// The longest key, value or name read: a length above it is a damaged file.
const MAX_FIELD: u32 = 64 << 20;
/// Entries written to sled per batch on restore.
const BATCH: usize = 10_000;

/// Every database the hub keeps, by name: what a backup holds and a wipe removes.
pub fn stores(config: &HubConfig) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("memory", config.memory.path.join("store")),
        ("pixie", config.pixie.path.clone()),
    ]
}

/// Indexes derived from the stores, which the hub rebuilds when they are missing: removed by
/// a wipe and a restore, never archived.
pub fn derived(config: &HubConfig) -> Vec<PathBuf> {
    vec![config.memory.path.join("fulltext")]
}

/// Errors of backup, restore and wipe.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A store could not be opened or read (another process, such as a running hub, may
    /// hold it).
    #[error("store {store} at {path}: {source} (is the hub running? stop it first)")]
    Storage {
        /// The store's name.
        store: String,
        /// Its folder.
        path: PathBuf,
        /// What sled said.
        source: sled::Error,
    },
    /// The archive is damaged, truncated or not an archive.
    #[error("{path} is not a readable hearth backup: {reason}; nothing was written")]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The archive was written by a newer hearth.
    #[error("{path} is backup format version {found}, newer than this build's {FORMAT_VERSION}; restore it with a newer hearth; nothing was written")]
    NewerVersion {
        /// The archive.
        path: PathBuf,
        /// The version it has.
        found: u32,
    },
    /// A store the archive would restore into already holds data.
    #[error("store {store} at {path} already holds data; restore only goes into an empty hub (`hearth-hub wipe --yes` first); nothing was written")]
    NotEmpty {
        /// The store's name.
        store: String,
        /// Its folder.
        path: PathBuf,
    },
    /// The archive names a store this hub does not keep.
    #[error("{path} holds store {store}, which this hub does not keep; nothing was written")]
    UnknownStore {
        /// The archive.
        path: PathBuf,
        /// The store's name.
        store: String,
    },
}

/// The result type of this module.
pub type Result<T> = std::result::Result<T, BackupError>;

/// The archive's header: what it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// The archive format's version ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// The hearth that wrote it.
    pub hearth_version: String,
    /// When, in ms since the epoch.
    pub created_at_ms: u64,
    /// Every store, in the body's order.
    pub stores: Vec<StoreSummary>,
}

/// One store in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Its name, as in [`stores`].
    pub name: String,
    /// The first id the store may hand out after a restore (sled's id counter is not in any
    /// tree).
    pub ids_from: u64,
    /// Its trees, in the body's order.
    pub trees: Vec<TreeSummary>,
}

/// One tree in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeSummary {
    /// The tree's name (sled's default tree is `__sled__default`).
    pub name: String,
    /// How many entries it holds.
    pub entries: u64,
}

impl Header {
    /// One line per store and tree: "memory/memories: 12 entries".
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.stores {
            if s.trees.is_empty() {
                out.push_str(&format!("{}: no data\n", s.name));
            }
            for t in &s.trees {
                out.push_str(&format!("{}/{}: {} entries\n", s.name, t.name, t.entries));
            }
        }
        out
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn storage<'a>(store: &'a str, path: &'a Path) -> impl FnOnce(sled::Error) -> BackupError + 'a {
    move |source| BackupError::Storage {
        store: store.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

/// The tree `name` of `db`; the default tree is the database's own handle (a second handle
/// on it would keep a root of its own).
fn tree(db: &sled::Db, name: &[u8]) -> sled::Result<sled::Tree> {
    if name == DEFAULT_TREE {
        Ok((**db).clone())
    } else {
        db.open_tree(name)
    }
}

/// The names of every tree in `db`, the default tree included, sorted.
fn tree_names(db: &sled::Db) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = db.tree_names().iter().map(|n| n.to_vec()).collect();
    names.push(DEFAULT_TREE.to_vec());
    names.sort();
    names.dedup();
    names
}

/// Opens the store in `path` if it exists; `None` if there is no such folder (nothing is
/// created).
fn open_existing(name: &str, path: &Path) -> Result<Option<sled::Db>> {
    if !path.exists() {
        return Ok(None);
    }
    open_db(path).map(Some).map_err(storage(name, path))
}

/// A writer that keeps the CRC-32 of what passes through it.
struct Summing<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn put_field(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&n| n <= MAX_FIELD)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a field of {} bytes is over the format's limit",
                    bytes.len()
                ),
            )
        })?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

/// Writes every tree of every store into the archive `out`, atomically (a temporary file in
/// the same folder, synced, then renamed), readable by the hub's user only. The stores must
/// not be in use: stop the hub first. Returns the archive's header.
pub fn backup(stores: &[(&str, PathBuf)], out: &Path, now_ms: u64) -> Result<Header> {
    // Open every store first: a running hub holds them, and then nothing is written.
    let mut open = Vec::new();
    for (name, path) in stores {
        open.push((*name, path, open_existing(name, path)?));
    }
    let mut header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        hearth_version: env!("CARGO_PKG_VERSION").into(),
        created_at_ms: now_ms,
        stores: Vec::new(),
    };
    for (name, path, db) in &open {
        let mut summary = StoreSummary {
            name: name.to_string(),
            ids_from: 0,
            trees: Vec::new(),
        };
        if let Some(db) = db {
            summary.ids_from = next_id(db).map_err(storage(name, path))?;
            for tree_name in tree_names(db) {
                let t = tree(db, &tree_name).map_err(storage(name, path))?;
                let name = String::from_utf8(tree_name).map_err(|e| BackupError::Storage {
                    store: name.to_string(),
                    path: path.to_path_buf(),
                    source: sled::Error::Unsupported(format!(
                        "tree name {:?} is not UTF-8",
                        e.as_bytes()
                    )),
                })?;
                summary.trees.push(TreeSummary {
                    name,
                    entries: t.len() as u64,
                });
            }
        }
        header.stores.push(summary);
    }

    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    private_dir(&folder).map_err(io(&folder))?;
    let file_name = out
        .file_name()
        .ok_or_else(|| BackupError::Io {
            path: out.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?
        .to_string_lossy();
    let tmp = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = write_archive(&header, &open, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    File::open(&folder)
        .and_then(|f| f.sync_all())
        .map_err(io(&folder))?;
    Ok(header)
}

fn write_archive(
    header: &Header,
    open: &[(&str, &PathBuf, Option<sled::Db>)],
    tmp: &Path,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io(tmp))?;
    let mut out = Summing {
        inner: BufWriter::new(file),
        crc: crc32fast::Hasher::new(),
    };
    let write = |out: &mut Summing<BufWriter<File>>| -> std::io::Result<()> {
        writeln!(out, "{FORMAT} {FORMAT_VERSION}")?;
        serde_json::to_writer(&mut *out, header)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    write(&mut out).map_err(io(tmp))?;
    for ((name, path, db), summary) in open.iter().zip(&header.stores) {
        let Some(db) = db else {
            continue;
        };
        out.write_all(b"S").map_err(io(tmp))?;
        put_field(&mut out, name.as_bytes()).map_err(io(tmp))?;
        out.write_all(&summary.ids_from.to_be_bytes())
            .map_err(io(tmp))?;
        for t in &summary.trees {
            out.write_all(b"T").map_err(io(tmp))?;
            put_field(&mut out, t.name.as_bytes()).map_err(io(tmp))?;
            let handle = tree(db, t.name.as_bytes()).map_err(storage(name, path))?;
            let mut n = 0;
            for entry in handle.iter() {
                let (k, v) = entry.map_err(storage(name, path))?;
                out.write_all(b"E").map_err(io(tmp))?;
                put_field(&mut out, &k).map_err(io(tmp))?;
                put_field(&mut out, &v).map_err(io(tmp))?;
                n += 1;
            }
            if n != t.entries {
                // Nothing else may write while the store is open here; a change means it did.
                return Err(BackupError::Storage {
                    store: name.to_string(),
                    path: path.to_path_buf(),
                    source: sled::Error::Unsupported(format!(
                        "tree {} changed during the backup",
                        t.name
                    )),
                });
            }
        }
    }
    out.write_all(b".").map_err(io(tmp))?;
    let crc = out.crc.clone().finalize();
    let mut inner = out.inner;
    inner.write_all(&crc.to_be_bytes()).map_err(io(tmp))?;
    let file = inner.into_inner().map_err(|e| io(tmp)(e.into_error()))?;
    file.sync_all().map_err(io(tmp))?;
    Ok(())
}

/// A reader that keeps the CRC-32 of what it has read.
struct Checked<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: BufRead> Checked<R> {
    fn exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf)?;
        self.crc.update(&buf);
        Ok(buf)
    }

    fn byte(&mut self) -> std::io::Result<u8> {
        Ok(self.exact(1)?[0])
    }

    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_be_bytes(
            self.exact(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn field(&mut self) -> std::io::Result<Vec<u8>> {
        let len = u32::from_be_bytes(self.exact(4)?.try_into().expect("4 bytes"));
        if len > MAX_FIELD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a field of {len} bytes is over the format's limit"),
            ));
        }
        self.exact(len as usize)
    }

    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        (&mut self.inner)
            .take(MAX_HEADER)
            .read_until(b'\n', &mut line)?;
        if line.pop() != Some(b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the header line is missing or too long",
            ));
        }
        self.crc.update(&line);
        self.crc.update(b"\n");
        Ok(line)
    }
}

/// What the body of an archive says, one record at a time.
enum Record {
    Store { name: String, ids_from: u64 },
    Tree { name: Vec<u8> },
    Entry { key: Vec<u8>, value: Vec<u8> },
}

/// An archive being read: its header, then its records; [`Reader::finish`] checks the
/// checksum and that nothing follows it.
struct Reader<R> {
    input: Checked<R>,
    path: PathBuf,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    fn corrupt(&self, reason: impl std::fmt::Display) -> BackupError {
        BackupError::Corrupt {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn damaged(&self, e: std::io::Error) -> BackupError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.corrupt("it ends too early (truncated)")
        } else if e.kind() == std::io::ErrorKind::InvalidData {
            self.corrupt(e)
        } else {
            BackupError::Io {
                path: self.path.clone(),
                source: e,
            }
        }
    }

    fn open(input: R, path: &Path) -> Result<(Reader<R>, Header)> {
        let mut reader = Reader {
            input: Checked {
                inner: input,
                crc: crc32fast::Hasher::new(),
            },
            path: path.to_path_buf(),
            done: false,
        };
        let first = reader.input.line().map_err(|e| reader.damaged(e))?;
        let first = String::from_utf8_lossy(&first).into_owned();
        let Some(version) = first.strip_prefix(FORMAT).and_then(|v| v.strip_prefix(' ')) else {
            return Err(reader.corrupt(format!("it does not start with {FORMAT:?}")));
        };
        let found: u32 = version
            .parse()
            .map_err(|_| reader.corrupt(format!("format version {version:?} is not a number")))?;
        if found > FORMAT_VERSION {
            return Err(BackupError::NewerVersion {
                path: path.to_path_buf(),
                found,
            });
        }
        let line = reader.input.line().map_err(|e| reader.damaged(e))?;
        let header: Header = serde_json::from_slice(&line)
            .map_err(|e| reader.corrupt(format!("the header does not decode: {e}")))?;
        if header.format != FORMAT || header.format_version != found {
            return Err(reader.corrupt("the header does not match the first line"));
        }
        Ok((reader, header))
    }

    /// The next record, or `None` at the end of the body.
    fn next(&mut self) -> Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let record = (|| -> std::io::Result<Option<Record>> {
            Ok(Some(match self.input.byte()? {
                b'S' => {
                    let name = self.input.field()?;
                    let ids_from = self.input.u64()?;
                    Record::Store {
                        name: String::from_utf8_lossy(&name).into_owned(),
                        ids_from,
                    }
                }
                b'T' => Record::Tree {
                    name: self.input.field()?,
                },
                b'E' => Record::Entry {
                    key: self.input.field()?,
                    value: self.input.field()?,
                },
                b'.' => return Ok(None),
                tag => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("unknown record tag {tag:#04x}"),
                    ))
                }
            }))
        })()
        .map_err(|e| self.damaged(e))?;
        self.done = record.is_none();
        Ok(record)
    }

    /// Checks the checksum after the body, and that the file ends there.
    fn finish(mut self) -> Result<()> {
        let computed = self.input.crc.clone().finalize();
        let mut stored = [0; 4];
        self.input
            .inner
            .read_exact(&mut stored)
            .map_err(|e| self.damaged(e))?;
        if u32::from_be_bytes(stored) != computed {
            return Err(self.corrupt("the checksum does not match (the file is damaged)"));
        }
        let mut rest = [0; 1];
        match self.input.inner.read(&mut rest) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.corrupt("there are bytes after the checksum")),
            Err(e) => Err(self.damaged(e)),
        }
    }
}

/// Reads the whole archive and checks it: the format and version, every record, that the
/// body holds what the header says, and the checksum. Writes nothing. Returns the header.
pub fn check(file: &Path) -> Result<Header> {
    let input = File::open(file).map_err(io(file))?;
    check_from(BufReader::new(input), file)
}

fn check_from(input: impl BufRead, file: &Path) -> Result<Header> {
    let (mut reader, header) = Reader::open(input, file)?;
    let mut seen: Vec<StoreSummary> = Vec::new();
    while let Some(record) = reader.next()? {
        match record {
            Record::Store { name, ids_from } => seen.push(StoreSummary {
                name,
                ids_from,
                trees: Vec::new(),
            }),
            Record::Tree { name } => {
                let Some(store) = seen.last_mut() else {
                    return Err(reader.corrupt("a tree comes before any store"));
                };
                store.trees.push(TreeSummary {
                    name: String::from_utf8_lossy(&name).into_owned(),
                    entries: 0,
                });
            }
            Record::Entry { .. } => {
                let Some(tree) = seen.last_mut().and_then(|s| s.trees.last_mut()) else {
                    return Err(reader.corrupt("an entry comes before any tree"));
                };
                tree.entries += 1;
            }
        }
    }
    reader.finish()?;
    // The header lists stores that had no folder too; the body has only those with data.
    let listed: Vec<&StoreSummary> = header
        .stores
        .iter()
        .filter(|s| !s.trees.is_empty())
        .collect();
    if listed.len() != seen.len() || listed.iter().zip(&seen).any(|(a, b)| *a != b) {
        return Err(BackupError::Corrupt {
            path: file.to_path_buf(),
            reason: "the body does not hold what the header lists".into(),
        });
    }
    Ok(header)
}

/// Whether the store holds any entry in any tree.
fn holds_data(db: &sled::Db) -> sled::Result<bool> {
    for name in tree_names(db) {
        if !tree(db, &name)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Restores the archive `file` into `stores`, which must be empty (or missing), and removes
/// the `derived` indexes so the hub rebuilds them from what was restored. The whole archive
/// is checked first, and every store, before anything is written. Returns the header, whose
/// counts are what was written.
pub fn restore(stores: &[(&str, PathBuf)], derived: &[PathBuf], file: &Path) -> Result<Header> {
    let header = check(file)?;
    for s in &header.stores {
        if !stores.iter().any(|(name, _)| *name == s.name) {
            return Err(BackupError::UnknownStore {
                path: file.to_path_buf(),
                store: s.name.clone(),
            });
        }
    }
    for (name, path) in stores {
        if let Some(db) = open_existing(name, path)? {
            if holds_data(&db).map_err(storage(name, path))? {
                return Err(BackupError::NotEmpty {
                    store: name.to_string(),
                    path: path.clone(),
                });
            }
        }
    }

    // Read it again, this time writing. The file was checked a moment ago; should it have
    // changed since, the error says so and the stores need a wipe before the next try.
    let input = BufReader::new(File::open(file).map_err(io(file))?);
    let (mut reader, _) = Reader::open(input, file)?;
    let mut target: Option<Target> = None;
    while let Some(record) = reader.next()? {
        match record {
            Record::Store { name, ids_from } => {
                if let Some(t) = target.take() {
                    t.close()?;
                }
                let path = stores
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, p)| p.clone())
                    .expect("checked above");
                let db = open_db(&path).map_err(storage(&name, &path))?;
                target = Some(Target {
                    name,
                    path,
                    db,
                    ids_from,
                    tree: None,
                    batch: sled::Batch::default(),
                    pending: 0,
                });
            }
            Record::Tree { name } => {
                let t = target.as_mut().expect("checked above");
                t.apply()?;
                t.tree = Some(tree(&t.db, &name).map_err(storage(&t.name, &t.path))?);
            }
            Record::Entry { key, value } => {
                let t = target.as_mut().expect("checked above");
                t.batch.insert(key, value);
                t.pending += 1;
                if t.pending == BATCH {
                    t.apply()?;
                }
            }
        }
    }
    if let Some(t) = target.take() {
        t.close()?;
    }
    reader.finish()?;
    remove_derived(derived)?;
    Ok(header)
}

/// A store being restored: the tree being written and its entries not yet applied.
struct Target {
    name: String,
    path: PathBuf,
    db: sled::Db,
    ids_from: u64,
    tree: Option<sled::Tree>,
    batch: sled::Batch,
    pending: usize,
}

impl Target {
    /// Writes the pending entries into the current tree.
    fn apply(&mut self) -> Result<()> {
        if let Some(tree) = &self.tree {
            tree.apply_batch(std::mem::take(&mut self.batch))
                .map_err(storage(&self.name, &self.path))?;
        }
        self.pending = 0;
        Ok(())
    }

    /// Writes what is pending, sets where the store's ids continue (after the default tree
    /// was written: it holds that floor), and flushes.
    fn close(mut self) -> Result<()> {
        self.apply()?;
        reserve_ids(&self.db, self.ids_from).map_err(storage(&self.name, &self.path))?;
        self.db.flush().map_err(storage(&self.name, &self.path))?;
        Ok(())
    }
}

fn remove_derived(derived: &[PathBuf]) -> Result<()> {
    for path in derived {
        if path.exists() {
            std::fs::remove_dir_all(path).map_err(io(path))?;
        }
    }
    Ok(())
}

/// What [`wipe`] would remove: the folders of `stores` and `derived` that exist.
pub fn wipe_plan(stores: &[(&str, PathBuf)], derived: &[PathBuf]) -> Vec<PathBuf> {
    stores
        .iter()
        .map(|(_, p)| p)
        .chain(derived)
        .filter(|p| p.exists())
        .cloned()
        .collect()
}

/// Removes every store's folder and the derived indexes: everything the hub knows. Each
/// store is opened first, so a running hub (which holds them) makes this fail before
/// anything is removed. Returns what was removed.
pub fn wipe(stores: &[(&str, PathBuf)], derived: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut held = Vec::new();
    for (name, path) in stores {
        held.push(open_existing(name, path)?);
    }
    drop(held);
    let plan = wipe_plan(stores, derived);
    for path in &plan {
        std::fs::remove_dir_all(path).map_err(io(path))?;
    }
    Ok(plan)
}
