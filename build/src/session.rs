//! What a build (and most commands) opens first: the store, the registry
//! client, the image resolver and an async runtime.

use std::path::Path;
use std::sync::Arc;

use rbuild_cache::Store;
use rbuild_registry::{Client, ClientOptions, Platform};
use rbuild_solver::ImageResolver;

use crate::BuildError;

/// An open store with its registry client.
pub struct Session {
    /// The store.
    pub store: Store,
    /// Resolves and pulls images.
    pub images: Arc<ImageResolver>,
    /// The async runtime for registry and solver work.
    pub runtime: tokio::runtime::Runtime,
}

impl Session {
    /// Opens the store at `root`.
    pub fn open(root: &Path, options: ClientOptions) -> Result<Self, BuildError> {
        let store = Store::open(root).map_err(|source| BuildError::OpenStore {
            root: root.to_path_buf(),
            source,
        })?;
        let client = Client::new(options)?;
        let images = Arc::new(ImageResolver::new(store.clone(), client));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(crate::error::io("start the async runtime"))?;
        Ok(Self {
            store,
            images,
            runtime,
        })
    }
}

/// The platform of this machine, e.g. `linux/amd64`.
pub fn host_platform() -> Platform {
    Platform::host()
}

/// The host platform as `os/arch[/variant]`, as the frontend takes it.
pub fn host_platform_string() -> String {
    host_platform().to_string()
}
