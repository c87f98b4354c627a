//! Backup, restore and wipe: every store the hub keeps (its sled databases, tree by tree, and
//! the terminal registry) in one checked archive file (`hearth-hub backup|restore|wipe`).
//!
//! A store is a [`Store`] in [`stores`]: a name, a path and a [`Kind`]. The archive holds every
//! tree of every sled store, so a tree added later is carried without a change here. A file
//! store (the terminal registry) is archived as a store with one tree, [`FILE_TREE`], whose
//! one entry (key empty) holds the file's bytes; so it needed no new record and no new
//! format version, and an older hearth refuses such an archive by the store's name
//! ([`BackupError::UnknownStore`]) rather than misreading it. Derived indexes ([`derived`])
//! are not archived: the hub rebuilds them from the stores on open.
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
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::HubConfig;
use crate::files::{folder_of, private_dir};
use crate::memory::store::{next_id, open_db, reserve_ids};
use crate::trust::registry::{self, RegistryError};

mod archive;
use archive::{put_field, Reader, Record, Summing};

/// The format's name, first in every archive.
pub const FORMAT: &str = "hearth-backup";
/// The archive format this build writes; it reads this one and older ones.
pub const FORMAT_VERSION: u32 = 1;

/// sled's default tree, which [`sled::Db::tree_names`] lists by this name.
const DEFAULT_TREE: &[u8] = b"__sled__default";
/// Entries written to sled per batch on restore.
const BATCH: usize = 10_000;

/// The one tree of a file store in an archive; its one entry, under an empty key, holds the
/// file's bytes.
pub const FILE_TREE: &str = "file";

/// What a store is on disk, which decides how it is read, checked, written and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sled database: a folder, every tree of which is archived.
    Sled,
    /// The terminal registry: one JSON file (0600), archived whole, checked as a registry.
    Registry,
}

/// One store the hub keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// Its name in archives.
    pub name: &'static str,
    /// Its folder (a sled store) or file (the registry).
    pub path: PathBuf,
    /// What it is.
    pub kind: Kind,
}

/// Every store the hub keeps: what a backup holds and a wipe removes.
pub fn stores(config: &HubConfig) -> Vec<Store> {
    vec![
        Store {
            name: "memory",
            path: config.memory.path.join("store"),
            kind: Kind::Sled,
        },
        Store {
            name: "pixie",
            path: config.pixie.path.clone(),
            kind: Kind::Sled,
        },
        Store {
            name: "registry",
            path: config.trust.registry.clone(),
            kind: Kind::Registry,
        },
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
    /// The terminal registry to back up, or the one a restore would go into, does not read as
    /// a registry.
    #[error("{0}; nothing was written")]
    Registry(RegistryError),
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

/// A store as a backup reads it; `None` where it is missing.
enum Source {
    /// A sled store, open (which a running hub prevents).
    Sled(Option<sled::Db>),
    /// A file store's bytes, checked.
    File(Option<Vec<u8>>),
}

/// The bytes of the registry file at `path`, checked as the hub checks it when it reads it;
/// `None` if there is no such file.
fn read_registry(path: &Path) -> Result<Option<Vec<u8>>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    registry::decode(path, &bytes).map_err(BackupError::Registry)?;
    Ok(Some(bytes))
}

/// Writes every store into the archive `out`, atomically (a temporary file in the same
/// folder, synced, then renamed), readable by the hub's user only. The sled stores must not
/// be in use: stop the hub first. Returns the archive's header.
pub fn backup(stores: &[Store], out: &Path, now_ms: u64) -> Result<Header> {
    // Open every store first: a running hub holds the sled ones, a damaged registry is
    // refused, and then nothing is written.
    let mut open = Vec::new();
    for store in stores {
        let source = match store.kind {
            Kind::Sled => Source::Sled(open_existing(store.name, &store.path)?),
            Kind::Registry => Source::File(read_registry(&store.path)?),
        };
        open.push((store, source));
    }
    let mut header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        hearth_version: env!("CARGO_PKG_VERSION").into(),
        created_at_ms: now_ms,
        stores: Vec::new(),
    };
    for (store, source) in &open {
        let (name, path) = (store.name, &store.path);
        let mut summary = StoreSummary {
            name: name.to_string(),
            ids_from: 0,
            trees: Vec::new(),
        };
        match source {
            Source::Sled(Some(db)) => {
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
            Source::File(Some(_)) => summary.trees.push(TreeSummary {
                name: FILE_TREE.into(),
                entries: 1,
            }),
            Source::Sled(None) | Source::File(None) => {}
        }
        header.stores.push(summary);
    }
    atomically(out, |tmp| write_archive(&header, &open, tmp))?;
    Ok(header)
}

/// Replaces `path` atomically: `write` creates and fills a temporary file beside it (mode
/// 0600, synced), which is then renamed over `path`, and the folder is synced. The folder is
/// created (0700) where it is missing; the temporary file is removed if anything fails.
fn atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let folder = folder_of(path);
    private_dir(&folder).map_err(io(&folder))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| BackupError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?
        .to_string_lossy();
    let tmp = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(io(path)));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(&folder)
        .and_then(|f| f.sync_all())
        .map_err(io(&folder))?;
    Ok(())
}

fn write_archive(header: &Header, open: &[(&Store, Source)], tmp: &Path) -> Result<()> {
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
    for ((store, source), summary) in open.iter().zip(&header.stores) {
        let (name, path) = (store.name, &store.path);
        match source {
            Source::Sled(Some(db)) => {
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
                        // Nothing else may write while the store is open here; a change
                        // means it did.
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
            Source::File(Some(bytes)) => {
                let write = |out: &mut Summing<BufWriter<File>>| -> std::io::Result<()> {
                    out.write_all(b"S")?;
                    put_field(out, name.as_bytes())?;
                    out.write_all(&0u64.to_be_bytes())?;
                    out.write_all(b"T")?;
                    put_field(out, FILE_TREE.as_bytes())?;
                    out.write_all(b"E")?;
                    put_field(out, b"")?;
                    put_field(out, bytes)
                };
                write(&mut out).map_err(io(tmp))?;
            }
            Source::Sled(None) | Source::File(None) => {}
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

/// Reads the whole archive and checks it: the format and version, every record, that the
/// body holds what the header says, and the checksum. Writes nothing. Returns the header.
pub fn check(file: &Path) -> Result<Header> {
    scan(file, |_, _| Ok(()))
}

/// [`check`], handing `visit` the store's name and the value of every entry as it is read.
fn scan(file: &Path, visit: impl FnMut(&str, &[u8]) -> Result<()>) -> Result<Header> {
    let input = File::open(file).map_err(io(file))?;
    check_from(BufReader::new(input), file, visit)
}

fn check_from(
    input: impl BufRead,
    file: &Path,
    mut visit: impl FnMut(&str, &[u8]) -> Result<()>,
) -> Result<Header> {
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
            Record::Entry { value, .. } => {
                let Some(store) = seen.last_mut().filter(|s| !s.trees.is_empty()) else {
                    return Err(reader.corrupt("an entry comes before any tree"));
                };
                store.trees.last_mut().expect("not empty").entries += 1;
                visit(&store.name, &value)?;
            }
        }
    }
    reader.finish()?;
    // The header lists stores that had no data too; the body has only those with data.
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

/// Whether the registry file at `path` lists any terminal. A missing file, an empty one and
/// one that lists no terminal (they were all revoked) hold none; a damaged one is an error.
fn registry_holds_terminals(path: &Path) -> Result<bool> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(path)(e)),
    };
    if bytes.is_empty() {
        return Ok(false);
    }
    let terminals = registry::decode(path, &bytes).map_err(BackupError::Registry)?;
    Ok(!terminals.is_empty())
}

/// Restores the archive `file` into `stores`, which must be empty (or missing), and removes
/// the `derived` indexes so the hub rebuilds them from what was restored. The whole archive
/// is checked first (the registry in it read as the hub reads one), and every store, before
/// anything is written. Returns the header, whose counts are what was written.
pub fn restore(stores: &[Store], derived: &[PathBuf], file: &Path) -> Result<Header> {
    let kind = |name: &str| stores.iter().find(|s| s.name == name).map(|s| s.kind);
    let corrupt = |reason: String| BackupError::Corrupt {
        path: file.to_path_buf(),
        reason,
    };
    let header = scan(file, |store, value| {
        if kind(store) == Some(Kind::Registry) {
            registry::decode(file, value).map_err(|e| match e {
                RegistryError::Damaged { reason, .. } => {
                    corrupt(format!("its terminal registry is damaged: {reason}"))
                }
                other => corrupt(format!("its terminal registry does not read: {other}")),
            })?;
        }
        Ok(())
    })?;
    for s in &header.stores {
        match kind(&s.name) {
            None => {
                return Err(BackupError::UnknownStore {
                    path: file.to_path_buf(),
                    store: s.name.clone(),
                })
            }
            Some(Kind::Registry)
                if !s.trees.is_empty()
                    && (s.trees.len() != 1
                        || s.trees[0].name != FILE_TREE
                        || s.trees[0].entries != 1) =>
            {
                return Err(corrupt(format!(
                    "its store {} is not one file in one tree {FILE_TREE:?}",
                    s.name
                )));
            }
            Some(_) => {}
        }
    }
    for store in stores {
        let holds = match store.kind {
            Kind::Sled => match open_existing(store.name, &store.path)? {
                Some(db) => holds_data(&db).map_err(storage(store.name, &store.path))?,
                None => false,
            },
            Kind::Registry => registry_holds_terminals(&store.path)?,
        };
        if holds {
            return Err(BackupError::NotEmpty {
                store: store.name.to_string(),
                path: store.path.clone(),
            });
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
                let store = stores
                    .iter()
                    .find(|s| s.name == name)
                    .expect("checked above");
                let path = store.path.clone();
                target = Some(match store.kind {
                    Kind::Sled => Target::Sled(SledTarget {
                        db: open_db(&path).map_err(storage(&name, &path))?,
                        name,
                        path,
                        ids_from,
                        tree: None,
                        batch: sled::Batch::default(),
                        pending: 0,
                    }),
                    Kind::Registry => Target::Registry {
                        path,
                        bytes: Vec::new(),
                    },
                });
            }
            Record::Tree { name } => match target.as_mut().expect("checked above") {
                Target::Sled(t) => {
                    t.apply()?;
                    t.tree = Some(tree(&t.db, &name).map_err(storage(&t.name, &t.path))?);
                }
                // Its one tree, checked above.
                Target::Registry { .. } => {}
            },
            Record::Entry { key, value } => match target.as_mut().expect("checked above") {
                Target::Sled(t) => {
                    t.batch.insert(key, value);
                    t.pending += 1;
                    if t.pending == BATCH {
                        t.apply()?;
                    }
                }
                Target::Registry { bytes, .. } => *bytes = value,
            },
        }
    }
    if let Some(t) = target.take() {
        t.close()?;
    }
    reader.finish()?;
    remove_derived(derived)?;
    Ok(header)
}

/// A store being restored.
enum Target {
    /// A sled store.
    Sled(SledTarget),
    /// The terminal registry, written whole when it is closed.
    Registry { path: PathBuf, bytes: Vec<u8> },
}

impl Target {
    fn close(self) -> Result<()> {
        match self {
            Target::Sled(t) => t.close(),
            Target::Registry { path, bytes } => {
                // Checked in the first pass; again here in case the archive changed since.
                registry::decode(&path, &bytes).map_err(BackupError::Registry)?;
                crate::files::replace(&path, &bytes).map_err(io(&path))
            }
        }
    }
}

/// A sled store being restored: the tree being written and its entries not yet applied.
struct SledTarget {
    name: String,
    path: PathBuf,
    db: sled::Db,
    ids_from: u64,
    tree: Option<sled::Tree>,
    batch: sled::Batch,
    pending: usize,
}

impl SledTarget {
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

/// What a wipe removes, in order: each path that exists, and whether it is a folder.
fn removals(stores: &[Store], derived: &[PathBuf]) -> Vec<(PathBuf, bool)> {
    stores
        .iter()
        .map(|s| (s.path.clone(), s.kind == Kind::Sled))
        .chain(derived.iter().map(|p| (p.clone(), true)))
        .filter(|(p, _)| p.exists())
        .collect()
}

/// What [`wipe`] would remove: the folders of the sled `stores` and of `derived`, and the
/// registry file, those that exist.
pub fn wipe_plan(stores: &[Store], derived: &[PathBuf]) -> Vec<PathBuf> {
    removals(stores, derived)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Removes every store (the sled stores' folders, the registry file) and the derived indexes:
/// everything the hub knows. Each sled store is opened first, so a running hub (which holds
/// them) makes this fail before anything is removed; the registry, which the hub does not
/// lock, is removed only after that. Returns what was removed.
pub fn wipe(stores: &[Store], derived: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut held = Vec::new();
    for store in stores.iter().filter(|s| s.kind == Kind::Sled) {
        held.push(open_existing(store.name, &store.path)?);
    }
    drop(held);
    let plan = removals(stores, derived);
    for (path, folder) in &plan {
        if *folder {
            std::fs::remove_dir_all(path).map_err(io(path))?;
        } else {
            std::fs::remove_file(path).map_err(io(path))?;
        }
    }
    Ok(plan.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_store(path: PathBuf) -> Vec<Store> {
        vec![Store {
            name: "registry",
            path,
            kind: Kind::Registry,
        }]
    }

    #[test]
    fn a_registry_that_does_not_read_is_refused_even_under_a_good_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from/terminals.json");
        crate::trust::Registry::open(&from)
            .unwrap()
            .pair("kitchen", "kitchen", false)
            .unwrap();
        let out = dir.path().join("hub.hearth-backup");
        backup(&registry_store(from), &out, 0).unwrap();

        // The same bytes with another registry version, and a checksum that matches them.
        let mut bytes = std::fs::read(&out).unwrap();
        let body = bytes.len() - 4;
        let at = bytes
            .windows(12)
            .position(|w| w == b"\"version\": 1")
            .expect("the registry's version");
        bytes[at + 11] = b'9';
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&out, &bytes).unwrap();
        check(&out).unwrap();

        let to = dir.path().join("to/terminals.json");
        let err = restore(&registry_store(to.clone()), &[], &out).unwrap_err();
        assert!(
            err.to_string().contains("its terminal registry is damaged"),
            "{err}"
        );
        assert!(!to.parent().unwrap().exists(), "nothing written");
    }
}
