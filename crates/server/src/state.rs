//! Everything a request needs, built once at start-up.

use std::sync::Arc;

use cardcheck_domain::{ChainSource, Clock, Engine, EngineConfig, SandboxSource, Source};
use cardcheck_encryption::{Decryptor, KeyRing};
use cardcheck_store::{Backend, StoreError};

use crate::auth::CredentialCache;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// Shared server state.
pub struct AppState {
    pub(crate) backend: Backend,
    pub(crate) config: ServerConfig,
    pub(crate) engine: Engine,
    pub(crate) sources: ChainSource,
    pub(crate) decryptor: Decryptor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) callers: CredentialCache,
    pub(crate) metrics: Metrics,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.backend)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Encryption key ring could not be created or read.
    #[error("server encryption keys: {0}")]
    Keys(String),
}

/// The stored Encryption key ring, generated and stored on first start.
pub async fn load_or_create_key_ring(backend: &Backend) -> Result<KeyRing, StartError> {
    if let Some(bytes) = backend.keys.load_server_keys().await? {
        return KeyRing::from_bytes(&bytes).map_err(|e| StartError::Keys(e.to_string()));
    }
    let ring = tokio::task::spawn_blocking(KeyRing::generate)
        .await
        .map_err(|e| StartError::Keys(e.to_string()))?
        .map_err(|e| StartError::Keys(e.to_string()))?;
    backend.keys.save_server_keys(&ring.to_bytes()).await?;
    Ok(ring)
}

impl AppState {
    /// Builds the state: sources (sandbox first when enabled, then the registry), the
    /// engine and the Encryption key ring.
    pub async fn new(
        backend: Backend,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<AppState>, StartError> {
        let keys = load_or_create_key_ring(&backend).await?;
        let mut sources: Vec<Arc<dyn Source>> = Vec::new();
        if config.sandbox {
            sources.push(Arc::new(SandboxSource::new()));
        }
        sources.push(backend.registry.clone());
        let engine = Engine::new(
            config.bins.clone(),
            EngineConfig {
                strict_luhn: config.strict_luhn,
            },
            clock.clone(),
        );
        Ok(Arc::new(AppState {
            callers: CredentialCache::new(backend.accounts.clone(), config.credential_ttl),
            backend,
            engine,
            sources: ChainSource::new(sources),
            decryptor: Decryptor::new(keys),
            clock,
            metrics: Metrics::default(),
            config,
        }))
    }

    /// Whether the sandbox catalogue answers.
    pub fn sandbox_enabled(&self) -> bool {
        self.config.sandbox
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The server's Encryption public key, PEM.
    pub fn public_key_pem(&self, alg: cardcheck_encryption::KeyAlgorithm) -> String {
        self.decryptor.keys().public_pem(alg)
    }
}
