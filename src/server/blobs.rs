//! The blob seam: uploads, page images and page manifests, on local files (`file://DIR`, the
//! default: the data directory, laid out as before) or S3-compatible object storage
//! (`s3://bucket/prefix`), both through the `object_store` crate.
//!
//! S3 settings come from the usual AWS environment variables, read by `object_store`'s
//! `AmazonS3Builder::from_env`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION` / `AWS_REGION`, `AWS_ENDPOINT_URL` (MinIO, Ceph,
//! moto, …; path-style requests) and `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint.
//!
//! Keys are built only from generated job ids and page indices: `uploads/{id}`,
//! `pages/{id}/{index}.png`, `pages/{id}/manifest.json`. Every `put` is atomic (a local file is
//! written aside and renamed; an S3 object appears whole), so a reader never sees half a blob.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::server::errors::ApiError;
use crate::server::store::JobId;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A bad `--blobs` URL.
    #[error("{0}")]
    Invalid(String),
    /// The object store refused or failed.
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        ApiError::internal(e)
    }
}

/// Where a job's files live.
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
    /// The folder of a local store (its emptied job folders are removed too).
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("url", &self.url).finish()
    }
}

impl BlobStore {
    /// Opens the blob store a `--blobs` URL names: `file://DIR` or `s3://bucket[/prefix]`.
    pub fn open(url: &str) -> Result<Self, BlobError> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Self::local(std::path::Path::new(dir));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BlobError::Invalid(format!("--blobs {url}: no bucket")));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
            let prefix = Key::from(prefix.trim_matches('/'));
            return Ok(BlobStore { store: Arc::new(s3), prefix, url: url.to_string(), local_root: None });
        }
        Err(BlobError::Invalid(format!("--blobs must be file://DIR or s3://bucket/prefix, got '{url}'")))
    }

    /// Files under the local folder `dir` (created, with its `uploads` and `pages` folders,
    /// if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        for sub in ["uploads", "pages"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| BlobError::Invalid(format!("cannot create {}: {e}", path.display())))?;
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        let url = format!("file://{}", dir.display());
        Ok(BlobStore { store: Arc::new(fs), prefix: Key::default(), url, local_root: Some(dir.to_path_buf()) })
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, parts: &[&str]) -> Key {
        let mut key = self.prefix.clone();
        for p in parts {
            key = key.clone().join(*p);
        }
        key
    }

    /// Key of a job's upload.
    pub fn upload_key(&self, id: &JobId) -> Key {
        self.key(&["uploads", id.as_str()])
    }

    /// Key of the rendered image of page `index` (0-based position in the job).
    pub fn page_key(&self, id: &JobId, index: usize) -> Key {
        self.key(&["pages", id.as_str(), &format!("{index}.png")])
    }

    /// Key of a job's page list, written once every page image is stored.
    pub fn manifest_key(&self, id: &JobId) -> Key {
        self.key(&["pages", id.as_str(), "manifest.json"])
    }

    /// Stores a blob (atomically).
    pub async fn put(&self, key: &Key, bytes: impl Into<Bytes>) -> Result<(), BlobError> {
        self.store.put(key, PutPayload::from_bytes(bytes.into())).await?;
        Ok(())
    }

    /// Reads a blob; `None` when it does not exist.
    pub async fn get(&self, key: &Key) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(key).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a blob that must exist.
    pub async fn get_required(&self, key: &Key) -> Result<Bytes, BlobError> {
        self.get(key).await?.ok_or_else(|| BlobError::Invalid(format!("blob {key} is missing")))
    }

    /// Removes a blob (missing is fine).
    pub async fn delete(&self, key: &Key) -> Result<(), BlobError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a job's upload and page images.
    pub async fn delete_job(&self, id: &JobId) -> Result<(), BlobError> {
        self.delete(&self.upload_key(id)).await?;
        let pages = self.key(&["pages", id.as_str()]);
        let keys: Vec<Key> =
            self.store.list(Some(&pages)).filter_map(|m| async move { m.ok().map(|m| m.location) }).collect().await;
        for key in keys {
            self.delete(&key).await?;
        }
        if let Some(root) = &self.local_root {
            let _ = std::fs::remove_dir(root.join("pages").join(id.as_str()));
        }
        Ok(())
    }

    /// Checks that the store answers (for `/health` and `/ready`): asks for a key that does not
    /// exist; "not found" is the healthy answer.
    pub async fn ping(&self) -> Result<(), BlobError> {
        match self.store.head(&self.key(&[".docseek-health"])).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_blobs_keep_the_data_dir_layout() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        let id = JobId::generate();
        blobs.put(&blobs.upload_key(&id), b"doc".to_vec()).await.unwrap();
        blobs.put(&blobs.page_key(&id, 2), b"png".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("uploads").join(id.as_str())).unwrap(), b"doc");
        assert_eq!(std::fs::read(dir.path().join("pages").join(id.as_str()).join("2.png")).unwrap(), b"png");
        assert_eq!(blobs.get(&blobs.page_key(&id, 2)).await.unwrap().as_deref(), Some(&b"png"[..]));
        assert!(blobs.get(&blobs.page_key(&id, 3)).await.unwrap().is_none());
        blobs.ping().await.unwrap();
        blobs.delete_job(&id).await.unwrap();
        assert!(blobs.get(&blobs.upload_key(&id)).await.unwrap().is_none());
        assert!(blobs.get(&blobs.page_key(&id, 2)).await.unwrap().is_none());
    }

    #[test]
    fn urls_are_checked() {
        assert!(BlobStore::open("ftp://x").is_err());
        assert!(BlobStore::open("s3://").is_err());
    }
}
