//! The archive format of [`super`]: the records' fields written with a running CRC-32
//! ([`Summing`], [`put_field`]) and an archive read back record by record ([`Reader`]), every
//! length bounded and the checksum checked at the end.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use super::{BackupError, Header, Result, FORMAT, FORMAT_VERSION};

/// The longest header line read.
const MAX_HEADER: u64 = 1 << 20;
/// The longest key, value or name read: a length above it is a damaged file.
const MAX_FIELD: u32 = 64 << 20;

/// A writer that keeps the CRC-32 of what passes through it.
pub(super) struct Summing<W> {
    pub(super) inner: W,
    pub(super) crc: crc32fast::Hasher,
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

/// Writes a field: its length (`u32`, big-endian) and its bytes.
pub(super) fn put_field(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
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
pub(super) enum Record {
    Store { name: String, ids_from: u64 },
    Tree { name: Vec<u8> },
    Entry { key: Vec<u8>, value: Vec<u8> },
}

/// An archive being read: its header, then its records; [`Reader::finish`] checks the
/// checksum and that nothing follows it.
pub(super) struct Reader<R> {
    input: Checked<R>,
    path: PathBuf,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// The archive is damaged, for `reason`.
    pub(super) fn corrupt(&self, reason: impl std::fmt::Display) -> BackupError {
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

    /// Opens an archive: reads and checks its first line and its header.
    pub(super) fn open(input: R, path: &Path) -> Result<(Reader<R>, Header)> {
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
    pub(super) fn next(&mut self) -> Result<Option<Record>> {
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
    pub(super) fn finish(mut self) -> Result<()> {
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
