//! Evidence bytes, content-addressed by SHA-256 under the data directory (outside anything served).
//! The same bytes uploaded twice are stored once.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Where bytes found infected are moved: never served, never deduplicated into a document again, kept
    /// for the security officer's analysis.
    quarantine: PathBuf,
}

impl BlobStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("documents"),
            quarantine: data_dir.join("quarantine"),
        }
    }

    pub fn sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Where the bytes of a digest live: two levels of fan-out keep directories small.
    pub fn path_of(&self, sha256: &str) -> StoreResult<PathBuf> {
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(StoreError::Corrupt(format!(
                "`{sha256}` is not a SHA-256 digest"
            )));
        }
        Ok(self.root.join(&sha256[..2]).join(sha256))
    }

    /// Writes the bytes durably before any row names them: temp file, fsync, rename, fsync of the folder.
    /// A crash leaves at worst an unreferenced file, never a row without its file.
    pub async fn put(&self, bytes: Vec<u8>) -> StoreResult<String> {
        let sha256 = Self::sha256(&bytes);
        let path = self.path_of(&sha256)?;
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes))
            .await
            .map_err(|e| StoreError::Invalid(format!("storage task failed: {e}")))?
            .map_err(|e| StoreError::Invalid(format!("cannot store the document: {e}")))?;
        Ok(sha256)
    }

    pub async fn get(&self, sha256: &str) -> StoreResult<Vec<u8>> {
        let path = self.path_of(sha256)?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| StoreError::Corrupt(format!("document bytes {sha256} unreadable: {e}")))
    }

    pub fn exists(&self, sha256: &str) -> bool {
        self.path_of(sha256).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Where quarantined bytes of a digest live.
    pub fn quarantine_path_of(&self, sha256: &str) -> StoreResult<PathBuf> {
        self.path_of(sha256)?;
        Ok(self.quarantine.join(sha256))
    }

    /// Moves the bytes out of the store into the quarantine folder, durably. Idempotent: bytes already moved
    /// (or uploaded again since, and moved before) leave the store all the same.
    pub async fn quarantine(&self, sha256: &str) -> StoreResult<()> {
        let from = self.path_of(sha256)?;
        let to = self.quarantine_path_of(sha256)?;
        tokio::task::spawn_blocking(move || move_durably(&from, &to))
            .await
            .map_err(|e| StoreError::Invalid(format!("storage task failed: {e}")))?
            .map_err(|e| StoreError::Corrupt(format!("cannot quarantine {sha256}: {e}")))
    }
}

fn move_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_file() {
        return Ok(());
    }
    let dir = to
        .parent()
        .ok_or_else(|| std::io::Error::other("quarantine path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    if to.is_file() {
        std::fs::remove_file(from)?;
    } else {
        // The data directory is one file system: a rename moves the bytes without a copy.
        std::fs::rename(from, to)?;
        std::fs::File::open(dir)?.sync_all()?;
    }
    match from.parent() {
        Some(shard) => std::fs::File::open(shard)?.sync_all(),
        None => Ok(()),
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("blob path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}
