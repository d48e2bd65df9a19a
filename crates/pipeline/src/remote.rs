//! Warehouses in object storage (`s3://bucket/prefix`): the store, built
//! from the standard `AWS_*` variables as inputs are; the uploads, fetches
//! and listings the warehouse needs; and delta-rs taught to open `s3://`
//! tables through the same store.
//!
//! delta-rs commits a version by creating `_delta_log/<version>.json` only
//! if it does not exist (S3's conditional `If-None-Match: *` put), so two
//! writers can never both commit one version; no lock table is needed.

use std::path::Path;
use std::sync::{Arc, Once};

use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::{io, Error, Result};

/// Environment variables passed to the object store (as for inputs).
const ENV_PREFIXES: &[&str] = &["AWS_", "GOOGLE_", "AZURE_"];

/// A warehouse's place in an object store.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// `s3://bucket/prefix/`, ending in `/`.
    pub url: Url,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl Remote {
    /// The store holding `url`.
    pub(crate) fn open(url: &str) -> Result<Self> {
        register_with_delta();
        let mut url = Url::parse(url).map_err(|e| Error::Remote {
            location: url.to_string(),
            message: e.to_string(),
        })?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let (store, prefix) =
            object_store::parse_url_opts(&url, store_options()).map_err(|e| Error::Remote {
                location: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(Remote {
            url,
            store: Arc::from(store),
            prefix,
        })
    }

    fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    fn error(&self, relative: &str) -> impl Fn(object_store::Error) -> Error + '_ {
        let location = format!("{}{relative}", self.url);
        move |e| Error::Remote {
            location: location.clone(),
            message: e.to_string(),
        }
    }

    /// Uploads the local file `from` as `relative` (under the warehouse).
    pub(crate) async fn upload(&self, from: &Path, relative: &str) -> Result<()> {
        let mut file = tokio::fs::File::open(from).await.map_err(io(from))?;
        let mut writer = BufWriter::new(Arc::clone(&self.store), self.path(relative));
        let copied = tokio::io::copy(&mut file, &mut writer).await;
        match copied {
            Ok(_) => writer.shutdown().await.map_err(|e| Error::Remote {
                location: format!("{}{relative}", self.url),
                message: e.to_string(),
            }),
            Err(e) => {
                let _ = writer.abort().await;
                Err(Error::Remote {
                    location: format!("{}{relative}", self.url),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Fetches `relative` into the local file `to`.
    pub(crate) async fn download(&self, relative: &str, to: &Path) -> Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let got = self
            .store
            .get(&self.path(relative))
            .await
            .map_err(self.error(relative))?;
        let mut stream = got.into_stream();
        let mut file = tokio::fs::File::create(to).await.map_err(io(to))?;
        while let Some(chunk) = stream.try_next().await.map_err(self.error(relative))? {
            file.write_all(&chunk).await.map_err(io(to))?;
        }
        file.flush().await.map_err(io(to))
    }

    /// Deletes `relative`.
    pub(crate) async fn delete(&self, relative: &str) -> Result<()> {
        self.store
            .delete(&self.path(relative))
            .await
            .map_err(self.error(relative))
    }

    /// The objects under the directory `relative`, as paths relative to it.
    pub(crate) async fn files(&self, relative: &str) -> Result<Vec<String>> {
        let dir = self.path(relative);
        let objects: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(self.error(relative))?;
        let mut names: Vec<String> = objects
            .into_iter()
            .filter_map(|o| {
                o.location
                    .prefix_match(&dir)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
            })
            .map(|parts| parts.join("/"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The directories directly under the warehouse root.
    pub(crate) async fn dirs(&self) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(self.error(""))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Deletes everything under the directory `relative`.
    pub(crate) async fn delete_dir(&self, relative: &str) -> Result<()> {
        for file in self.files(relative).await? {
            self.delete(&format!("{relative}/{file}")).await?;
        }
        Ok(())
    }
}

/// Object store settings from the environment, keys lowercased as
/// object_store's config keys expect (`AWS_ENDPOINT` -> `aws_endpoint`),
/// with conditional puts on, which delta-rs commits with.
fn store_options() -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if !options.iter().any(|(k, _)| k == "aws_conditional_put") {
        options.push(("aws_conditional_put".into(), "etag".into()));
    }
    options
}

/// Opens `s3://` tables for delta-rs with [`store_options`] (its own S3
/// support would bring in the AWS SDK, which zeekml otherwise does without).
struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let mut options = store_options();
        options.extend(config.raw.clone());
        let (store, path) = object_store::parse_url_opts(url, options)
            .map_err(|e| DeltaTableError::InvalidTableLocation(format!("{url}: {e}")))?;
        Ok((Arc::from(store), path))
    }
}

/// delta-rs's default log store, which commits with conditional puts.
struct ConditionalPutLogs;

impl LogStoreFactory for ConditionalPutLogs {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_with_delta() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            if let Ok(url) = Url::parse(scheme) {
                object_store_factories().insert(url.clone(), Arc::new(S3Stores));
                logstore_factories().insert(url, Arc::new(ConditionalPutLogs));
            }
        }
    });
}
