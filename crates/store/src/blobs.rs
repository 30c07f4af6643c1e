//! Evidence bytes, content-addressed by SHA-256 under the data directory (outside anything served).
//! The same bytes uploaded twice are stored once.
//!
//! The bytes are written before the row that names them is committed, so a crash in between leaves a file
//! no row names (and a crash mid-write, a temporary file). [`BlobStore::sweep`] removes them at start-up.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};

use crate::error::{StoreError, StoreResult};

/// The suffix a file being swept carries while the sweep makes sure no row names it.
const SWEEPING: &str = ".sweeping";

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

    /// Removes the files no document row names and temporary files, when last written more than `grace`
    /// ago: a younger one may belong to an upload on its way to its row, in another replica sharing the
    /// folder (an upload's file is at most as old as its request, which the upload timeout bounds).
    /// Returns how many were removed.
    pub async fn sweep(&self, db: &impl ConnectionTrait, grace: Duration) -> StoreResult<usize> {
        let referenced = crate::documents::stored_digests(db).await?;
        let root = self.root.clone();
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let candidates =
            tokio::task::spawn_blocking(move || unnamed_files(&root, &referenced, cutoff))
                .await
                .map_err(|e| StoreError::Invalid(format!("sweep task failed: {e}")))?
                .map_err(|e| {
                    StoreError::Invalid(format!("cannot list the documents folder: {e}"))
                })?;
        let mut removed = 0;
        for found in candidates {
            let name = found
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let (path, aside) = match name.strip_suffix(SWEEPING) {
                // Set aside by a sweep cut short: checked as that sweep would have.
                Some(digest) => (found.with_file_name(digest), found.clone()),
                None => (
                    found.clone(),
                    found.with_file_name(format!("{name}{SWEEPING}")),
                ),
            };
            let digest = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if self.path_of(digest).is_err() {
                // A temporary file: no upload writes to it after its request, and no row names it.
                removed += usize::from(std::fs::remove_file(&found).is_ok());
                continue;
            }
            // Set aside first, then checked again: an upload of the same bytes that committed its row
            // since the listing, or found the file and freshened it, keeps it; one that comes now finds no
            // file and writes its own.
            if found == path && std::fs::rename(&path, &aside).is_err() {
                continue;
            }
            let fresh = modified(&aside).is_none_or(|at| at > cutoff);
            if fresh || crate::documents::names_digest(db, digest).await? {
                // Same bytes as any file an upload wrote there since: putting it back loses nothing.
                let _ = std::fs::rename(&aside, &path);
            } else {
                removed += usize::from(std::fs::remove_file(&aside).is_ok());
            }
        }
        Ok(removed)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The files under `root` that are not in `referenced` and were last written before `cutoff`.
fn unnamed_files(
    root: &Path,
    referenced: &HashSet<String>,
    cutoff: SystemTime,
) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let folders = match std::fs::read_dir(root) {
        Ok(folders) => folders,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for folder in folders {
        let folder = folder?;
        if !folder.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(folder.path())? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            let old = modified(&file.path()).is_some_and(|at| at < cutoff);
            if old && !referenced.contains(&name) {
                found.push(file.path());
            }
        }
    }
    Ok(found)
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Stored already: freshened, so that a sweep spares it until this upload's row is committed.
    match std::fs::File::open(path) {
        Ok(file) => return file.set_modified(SystemTime::now()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
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
