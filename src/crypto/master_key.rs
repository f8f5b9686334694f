//! The master key: 32 bytes from `AGENTGATE_MASTER_KEY` (base64) or from a key file that
//! agentgate creates with owner-only permissions. It never reaches the database, a log line
//! or `Debug` output.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use zeroize::Zeroizing;

/// Length of the master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Where the master key comes from.
pub enum MasterKeySource {
    /// Base64 text from the `AGENTGATE_MASTER_KEY` environment variable.
    Env(Zeroizing<String>),
    /// A key file; created with mode 0600 when `create_if_missing` and absent.
    File {
        /// Path of the key file.
        path: PathBuf,
        /// Whether a missing file may be created (only for the default file beside SQLite).
        create_if_missing: bool,
    },
}

impl MasterKeySource {
    /// The key file, when the key comes from one.
    pub fn file_path(&self) -> Option<&Path> {
        match self {
            MasterKeySource::Env(_) => None,
            MasterKeySource::File { path, .. } => Some(path),
        }
    }
}

/// Why the master key could not be loaded; each message tells the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The text is not base64 of exactly 32 bytes.
    #[error("the master key from {origin} must be base64 of exactly 32 bytes (generate one with `openssl rand -base64 32`)")]
    Malformed {
        /// Where the key came from (never the key).
        origin: String,
    },
    /// The key file does not exist and may not be created.
    #[error("master key file {path} does not exist; create it (base64 of 32 random bytes, mode 0600) or set AGENTGATE_MASTER_KEY")]
    Missing {
        /// The path looked at.
        path: String,
    },
    /// The key file can be read by group or others.
    #[error(
        "master key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen {
        /// The path looked at.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or creating the file failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The path looked at.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

/// The 32-byte master key. Zeroized on drop; `Debug` prints nothing of it.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Loads the current key from its source, creating the default key file on first start.
    pub fn load(source: MasterKeySource) -> Result<Self, MasterKeyError> {
        let mut keys = Self::load_all(source)?;
        Ok(keys.swap_remove(0))
    }

    /// Loads every key the source lists, the current one first. A source may list several
    /// keys (separated by newlines, spaces or commas) while a rotation is under way: the
    /// first seals, the others only open what they sealed before.
    pub fn load_all(source: MasterKeySource) -> Result<Vec<Self>, MasterKeyError> {
        match source {
            MasterKeySource::Env(text) => Self::decode_all(&text, "AGENTGATE_MASTER_KEY"),
            MasterKeySource::File {
                path,
                create_if_missing,
            } => Self::load_file(&path, create_if_missing),
        }
    }

    /// A key from raw bytes, for tests and for key generation.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        rand::rng().fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// The key as base64 text, for writing a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }

    /// Parses one key (base64 of 32 bytes), as given to `master-key rotate`.
    pub fn decode(text: &str, origin: &str) -> Result<Self, MasterKeyError> {
        let malformed = || MasterKeyError::Malformed {
            origin: origin.to_owned(),
        };
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| malformed())?);
        let bytes: [u8; MASTER_KEY_LEN] = decoded.as_slice().try_into().map_err(|_| malformed())?;
        Ok(Self::from_bytes(bytes))
    }

    fn decode_all(text: &str, origin: &str) -> Result<Vec<Self>, MasterKeyError> {
        let keys = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|part| !part.is_empty())
            .map(|part| Self::decode(part, origin))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(MasterKeyError::Malformed {
                origin: origin.to_owned(),
            });
        }
        Ok(keys)
    }

    /// Whether two keys are the same key.
    pub fn same_as(&self, other: &MasterKey) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.as_ref().ct_eq(other.0.as_ref()))
    }

    fn load_file(path: &Path, create_if_missing: bool) -> Result<Vec<Self>, MasterKeyError> {
        let shown = path.display().to_string();
        let io = |source| MasterKeyError::Io {
            path: shown.clone(),
            source,
        };
        let metadata = match fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_if_missing => {
                return Self::create_file(path).map(|key| vec![key]).map_err(io);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MasterKeyError::Missing { path: shown });
            }
            Err(e) => return Err(io(e)),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(MasterKeyError::TooOpen { path: shown, mode });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
        Self::decode_all(&text, &shown)
    }

    /// Replaces the key file with `keys` (the current one first), mode 0600: written to a
    /// temporary file beside it, synced, then renamed over it, so a crash leaves either the
    /// old file or the new one, never a torn one.
    pub fn write_key_file(path: &Path, keys: &[&MasterKey]) -> std::io::Result<()> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".new");
        let temporary = path.with_file_name(name);
        let _ = fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        for key in keys {
            file.write_all(key.to_base64().as_bytes())?;
            file.write_all(b"\n")?;
        }
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Writes a new key file with mode 0600 (never replacing an existing one) and returns it.
    fn create_file(path: &Path) -> std::io::Result<Self> {
        let key = Self::generate();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(key.to_base64().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        tracing::info!(path = %path.display(), "created a new master key file (mode 0600); back it up: without it the stored secrets cannot be read");
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_an_owner_only_file_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let source = || MasterKeySource::File {
            path: path.clone(),
            create_if_missing: true,
        };
        let created = MasterKey::load(source()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = MasterKey::load(source()).unwrap();
        assert_eq!(created.bytes(), loaded.bytes());
    }

    #[test]
    fn refuses_a_file_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, MasterKey::generate().to_base64().as_bytes()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = MasterKey::load(MasterKeySource::File {
            path,
            create_if_missing: true,
        })
        .unwrap_err();
        assert!(matches!(error, MasterKeyError::TooOpen { mode: 0o644, .. }));
    }

    #[test]
    fn refuses_a_short_key_without_echoing_it() {
        let error =
            MasterKey::load(MasterKeySource::Env(Zeroizing::new("c2hvcnQ=".into()))).unwrap_err();
        assert!(!error.to_string().contains("c2hvcnQ"));
        assert!(matches!(error, MasterKeyError::Malformed { .. }));
    }

    #[test]
    fn debug_prints_no_key_material() {
        let key = MasterKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey(***)");
    }
}
