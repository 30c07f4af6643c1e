//! Evidence bytes, content-addressed by SHA-256 under the data directory (outside anything served).
//! The same bytes uploaded twice are stored once.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("documents"),
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
