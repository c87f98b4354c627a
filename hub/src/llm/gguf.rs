//! Validation of a GGUF file before llama.cpp sees it.
//!
//! llama.cpp aborts the whole process on some malformed files, and Rust cannot catch an abort.
//! So the hub reads the header, the metadata and the tensor table itself, and checks that every
//! tensor's data lies inside the file, before it hands the path to llama.cpp.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Why a file is not a loadable GGUF model.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The model path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not start with the GGUF magic.
    #[error("model file {path} is not a GGUF file (it starts with {found:02x?}, expected \"GGUF\"); point llm.model at a .gguf file")]
    BadMagic {
        /// The model path.
        path: PathBuf,
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// The GGUF version is one llama.cpp does not read.
    #[error("model file {path} has GGUF version {version}; versions 2 and 3 are supported")]
    UnsupportedVersion {
        /// The model path.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The file ends before its header, metadata or tensor data do: a partial download or copy.
    #[error("model file {path} is truncated or corrupt: {what}; download it again")]
    Truncated {
        /// The model path.
        path: PathBuf,
        /// What did not fit.
        what: String,
    },
    /// A header field is out of range.
    #[error("model file {path} is corrupt: {what}")]
    Corrupt {
        /// The model path.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// What the validator learned about a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufSummary {
    /// The GGUF format version.
    pub version: u32,
    /// The number of tensors.
    pub tensors: u64,
    /// `general.architecture`, if present.
    pub architecture: Option<String>,
    /// `general.name`, if present.
    pub name: Option<String>,
    /// Whether `tokenizer.chat_template` is present.
    pub has_chat_template: bool,
    /// `general.type` (`model`, or `adapter` for a LoRA), if present.
    pub file_type: Option<String>,
    /// `adapter.type` (`lora`), if present.
    pub adapter_type: Option<String>,
    /// Every tensor's name and dimensions (ggml order: the row length first).
    pub shapes: Vec<(String, Vec<u64>)>,
}

/// Limits that keep a corrupt header from making us allocate or loop without bound.
const MAX_STRING: u64 = 64 * 1024 * 1024;
const MAX_COUNT: u64 = 1 << 24;
const MAX_DIMS: u32 = 4;

/// Checks that `path` is a complete GGUF file whose tensor data lies within the file.
pub fn validate(path: &Path) -> Result<GgufSummary, GgufError> {
    let io_err = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut r = Reader {
        inner: BufReader::new(file),
        pos: 0,
        path,
    };

    let magic = r.bytes(4, "the magic")?;
    if magic != b"GGUF" {
        return Err(GgufError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    let version = r.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    let n_tensors = r.count("the tensor count")?;
    let n_kv = r.count("the metadata count")?;

    let mut summary = GgufSummary {
        version,
        tensors: n_tensors,
        architecture: None,
        name: None,
        has_chat_template: false,
        file_type: None,
        adapter_type: None,
        shapes: Vec::new(),
    };
    let mut alignment: u64 = 32;
    for _ in 0..n_kv {
        let key = r.string("a metadata key")?;
        let ty = r.u32("a metadata type")?;
        match (key.as_str(), ty) {
            ("general.architecture", 8) => summary.architecture = Some(r.string("a value")?),
            ("general.name", 8) => summary.name = Some(r.string("a value")?),
            ("general.type", 8) => summary.file_type = Some(r.string("a value")?),
            ("adapter.type", 8) => summary.adapter_type = Some(r.string("a value")?),
            ("general.alignment", 4) => {
                alignment = u64::from(r.u32("the alignment")?);
                if alignment == 0 || !alignment.is_power_of_two() {
                    return Err(r.corrupt(format!("alignment {alignment} is not a power of two")));
                }
            }
            _ => {
                if key == "tokenizer.chat_template" {
                    summary.has_chat_template = true;
                }
                r.skip_value(ty, 0)?;
            }
        }
    }

    let mut data_needed: u64 = 0;
    for _ in 0..n_tensors {
        let name = r.string("a tensor name")?;
        let n_dims = r.u32("a tensor rank")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.corrupt(format!("tensor {name:?} has {n_dims} dimensions")));
        }
        let mut elements: u64 = 1;
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = r.u64("a tensor dimension")?;
            dims.push(d);
            elements = elements
                .checked_mul(d)
                .ok_or_else(|| r.corrupt(format!("tensor {name:?} is impossibly large")))?;
        }
        let ty = r.u32("a tensor type")?;
        let offset = r.u64("a tensor offset")?;
        let end = match tensor_bytes(ty, elements) {
            Some(bytes) => offset.checked_add(bytes),
            // A type this table does not know: at least its first byte must be in the file.
            None => offset.checked_add(1),
        }
        .ok_or_else(|| r.corrupt(format!("tensor {name:?} has offset {offset} out of range")))?;
        data_needed = data_needed.max(end);
        summary.shapes.push((name, dims));
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    let needed = data_start.saturating_add(data_needed);
    if needed > file_len {
        return Err(GgufError::Truncated {
            path: path.to_path_buf(),
            what: format!("its tensors need {needed} bytes but the file has {file_len}"),
        });
    }
    Ok(summary)
}

/// One tensor of a LoRA adapter: its name, its dimensions in ggml order (the row length
/// first) and its values, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterTensor {
    /// For example `blk.0.attn_q.weight.lora_a`.
    pub name: String,
    /// ggml order: `[n_in, rank]` for a `lora_a`, `[rank, n_out]` for a `lora_b`.
    pub dims: Vec<u64>,
    /// The values, F32, the first dimension varying fastest.
    pub data: Vec<f32>,
}

/// The bytes of a llama.cpp LoRA adapter GGUF (version 3): `general.type` adapter,
/// `general.architecture` as the base model's, `adapter.type` lora, `adapter.lora.alpha`,
/// then the F32 tensors, each aligned to 32 bytes. The layout is the one llama.cpp's
/// `convert_lora_to_gguf.py` writes and `llama-adapter.cpp` reads.
pub fn adapter_bytes(architecture: &str, alpha: f32, tensors: &[AdapterTensor]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    const ALIGN: usize = 32;
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend(4u64.to_le_bytes());
    for (key, value) in [
        ("general.type", "adapter"),
        ("general.architecture", architecture),
        ("adapter.type", "lora"),
    ] {
        string(&mut out, key);
        out.extend(8u32.to_le_bytes());
        string(&mut out, value);
    }
    string(&mut out, "adapter.lora.alpha");
    out.extend(6u32.to_le_bytes());
    out.extend(alpha.to_le_bytes());
    let mut offset = 0usize;
    for t in tensors {
        string(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes()); // F32
        out.extend((offset as u64).to_le_bytes());
        offset += (t.data.len() * 4).div_ceil(ALIGN) * ALIGN;
    }
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    for t in tensors {
        for v in &t.data {
            out.extend(v.to_le_bytes());
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    }
    out
}

/// Bytes taken by `elements` values of ggml type `ty`, for the types llama.cpp models use.
fn tensor_bytes(ty: u32, elements: u64) -> Option<u64> {
    // (elements per block, bytes per block), from ggml's type traits.
    let (block, size): (u64, u64) = match ty {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        20 => (32, 18),   // IQ4_NL
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        30 => (1, 2),     // BF16
        _ => return None,
    };
    elements.div_ceil(block).checked_mul(size)
}

struct Reader<'p> {
    inner: BufReader<File>,
    pos: u64,
    path: &'p Path,
}

impl Reader<'_> {
    fn truncated(&self, what: &str) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: format!("it ends inside {what} at byte {}", self.pos),
        }
    }

    fn corrupt(&self, what: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_path_buf(),
            what,
        }
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, GgufError> {
        let mut buf = Vec::new();
        let read = (&mut self.inner)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(|source| GgufError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += read as u64;
        if (read as u64) < n {
            return Err(self.truncated(what));
        }
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        let skipped =
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(|source| {
                GgufError::Io {
                    path: self.path.to_path_buf(),
                    source,
                }
            })?;
        self.pos += skipped;
        if skipped < n {
            return Err(self.truncated(what));
        }
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        let b = self.bytes(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn count(&mut self, what: &str) -> Result<u64, GgufError> {
        let n = self.u64(what)?;
        if n > MAX_COUNT {
            return Err(self.corrupt(format!("{what} is {n}")));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(self.corrupt(format!("{what} claims {len} bytes")));
        }
        let b = self.bytes(len, what)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn skip_value(&mut self, ty: u32, depth: u32) -> Result<(), GgufError> {
        let fixed = match ty {
            0 | 1 | 7 => 1, // u8, i8, bool
            2 | 3 => 2,     // u16, i16
            4..=6 => 4,     // u32, i32, f32
            10..=12 => 8,   // u64, i64, f64
            8 => {
                let len = self.u64("a string length")?;
                if len > MAX_STRING {
                    return Err(self.corrupt(format!("a metadata string claims {len} bytes")));
                }
                return self.skip(len, "a metadata string");
            }
            9 if depth == 0 => {
                let elem = self.u32("an array type")?;
                let n = self.u64("an array length")?;
                if n > MAX_COUNT * 4 {
                    return Err(self.corrupt(format!("a metadata array claims {n} elements")));
                }
                for _ in 0..n {
                    self.skip_value(elem, depth + 1)?;
                }
                return Ok(());
            }
            other => return Err(self.corrupt(format!("unknown metadata value type {other}"))),
        };
        self.skip(fixed, "a metadata value")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// A minimal, valid GGUF file: one metadata string, one string array, one F32 tensor of 8
    /// elements.
    pub(crate) fn tiny_gguf() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend(2u64.to_le_bytes()); // kv
        string(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        string(&mut b, "llama");
        string(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        string(&mut b, "a");
        string(&mut b, "b");
        string(&mut b, "w");
        b.extend(1u32.to_le_bytes());
        b.extend(8u64.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(0u64.to_le_bytes()); // offset
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend([0u8; 32]);
        b
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn accepts_a_valid_file() {
        let f = write(&tiny_gguf());
        let s = validate(f.path()).unwrap();
        assert_eq!(s.architecture.as_deref(), Some("llama"));
        assert_eq!(s.tensors, 1);
        assert!(!s.has_chat_template);
    }

    #[test]
    fn every_truncation_is_a_clean_error_naming_the_path() {
        let full = tiny_gguf();
        for len in 0..full.len() {
            let f = write(&full[..len]);
            let err = validate(f.path()).expect_err(&format!("len {len}"));
            let msg = err.to_string();
            assert!(msg.contains(&f.path().display().to_string()), "{msg}");
            assert!(
                matches!(
                    err,
                    GgufError::Truncated { .. } | GgufError::BadMagic { .. }
                ),
                "len {len}: {msg}"
            );
        }
    }

    #[test]
    fn rejects_bad_magic_version_and_absurd_counts() {
        let mut bad = tiny_gguf();
        bad[..4].copy_from_slice(b"GGML");
        assert!(matches!(
            validate(write(&bad).path()),
            Err(GgufError::BadMagic { .. })
        ));
        let mut bad = tiny_gguf();
        bad[4..8].copy_from_slice(&9u32.to_le_bytes());
        assert!(matches!(
            validate(write(&bad).path()),
            Err(GgufError::UnsupportedVersion { version: 9, .. })
        ));
        let mut bad = tiny_gguf();
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            validate(write(&bad).path()),
            Err(GgufError::Corrupt { .. })
        ));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = validate(Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/model.gguf"));
    }
}
