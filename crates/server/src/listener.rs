//! Accepting connections: plain TCP or TLS (rustls), HTTP/1.1 keep-alive and HTTP/2,
//! with the deadlines that keep slow or hostile clients from holding the server
//! (issue 9): a header read timeout, a TLS handshake timeout, a connection cap, and
//! graceful shutdown that finishes in-flight requests.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection handling settings.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// TLS on this listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A client must send its complete request head within this time (the first
    /// request's counted from the connection's start, or the TLS handshake's end).
    pub header_read_timeout: Duration,
    /// A TLS client must finish its handshake within this time.
    pub tls_handshake_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Largest PEM file read for TLS: a certificate chain is a few KiB; a wrong path
/// (`/dev/zero`, a FIFO, a disk image) must not be read until memory runs out.
const TLS_PEM_MAX: u64 = 1024 * 1024;

/// Reads a PEM file of at most [`TLS_PEM_MAX`] bytes.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(TLS_PEM_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    if bytes.len() as u64 > TLS_PEM_MAX {
        return Err(format!(
            "the {what} {} is larger than {} KiB: not a PEM file",
            path.display(),
            TLS_PEM_MAX / 1024
        ));
    }
    Ok(bytes)
}

/// A rustls server configuration from PEM files (certificate chain, private key),
/// offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn load_tls(cert_pem: &Path, key_pem: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert_bytes = read_pem(cert_pem, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert_pem.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert_pem.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read_pem(key_pem, "private key")?)
        .map_err(|e| format!("cannot read the private key {}: {e}", key_pem.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("TLS certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting and
/// waits (up to the grace period) for open connections to finish their requests.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    config: ListenerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let acceptor = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let first_request = Arc::new(AtomicBool::new(false));
        let service = NoteRequests {
            inner: TowerToHyperService::new(router.clone()),
            seen: first_request.clone(),
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let handshake_timeout = config.tls_handshake_timeout;
        let header_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let served = match acceptor {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    with_first_request_deadline(
                        watcher.watch(conn.into_owned()),
                        &first_request,
                        header_timeout,
                    )
                    .await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    with_first_request_deadline(
                        watcher.watch(conn.into_owned()),
                        &first_request,
                        header_timeout,
                    )
                    .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    Ok(())
}

/// Runs a connection, but drops it when no request head has arrived within `timeout`
/// of its start. hyper's own header timer starts only once the HTTP version is known
/// (the auto builder first reads enough bytes to tell HTTP/1 from the HTTP/2 preface),
/// so without this a client that connects and stays silent would hold a connection
/// slot for ever, and one that trickles bytes would get a second or more extra.
/// Later requests on a keep-alive connection are under hyper's header timer.
async fn with_first_request_deadline<F, E>(
    conn: F,
    first_request: &AtomicBool,
    timeout: Duration,
) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    let deadline = async {
        tokio::time::sleep(timeout).await;
        if first_request.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = conn => served,
        () = deadline => {
            tracing::debug!("connection closed: no request head within the header timeout");
            Ok(())
        }
    }
}

/// A service that notes that a request (head) has arrived, then delegates.
#[derive(Clone)]
struct NoteRequests<S> {
    inner: S,
    seen: Arc<AtomicBool>,
}

impl<S, R> hyper::service::Service<R> for NoteRequests<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.seen.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}
