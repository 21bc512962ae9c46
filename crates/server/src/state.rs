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

/// How often a running server looks for a rotated key ring.
pub const KEY_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Polls the store for a rotated key ring while the state lives.
fn spawn_key_reloader(state: std::sync::Weak<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_RELOAD_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else { break };
            if let Err(e) = state.reload_keys().await {
                tracing::warn!(error = %e, "cannot reload the Encryption keys");
            }
        }
    });
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
    // Nodes starting together on a fresh shared store race here: the first insert
    // wins and every node uses the ring that was stored.
    if backend
        .keys
        .save_server_keys_if_absent(&ring.to_bytes())
        .await?
    {
        return Ok(ring);
    }
    let stored = backend
        .keys
        .load_server_keys()
        .await?
        .ok_or_else(|| StartError::Keys("the stored key ring vanished".into()))?;
    KeyRing::from_bytes(&stored).map_err(|e| StartError::Keys(e.to_string()))
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
        let state = Arc::new(AppState {
            callers: CredentialCache::new(backend.accounts.clone(), config.credential_ttl),
            backend,
            engine,
            sources: ChainSource::new(sources),
            decryptor: Decryptor::new(keys),
            clock,
            metrics: Metrics::default(),
            config,
        });
        spawn_key_reloader(Arc::downgrade(&state));
        Ok(state)
    }

    /// Re-reads the Encryption key ring from the store and installs it when it changed
    /// (after `cardcheck key rotate`, possibly run on another node). Returns whether it
    /// changed.
    pub async fn reload_keys(&self) -> Result<bool, StartError> {
        let Some(bytes) = self.backend.keys.load_server_keys().await? else {
            return Ok(false);
        };
        let current = self.decryptor.keys().to_bytes();
        if current.as_slice() == bytes.as_slice() {
            return Ok(false);
        }
        let ring = KeyRing::from_bytes(&bytes).map_err(|e| StartError::Keys(e.to_string()))?;
        self.decryptor.replace_keys(ring);
        tracing::info!("Encryption keys reloaded");
        Ok(true)
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
