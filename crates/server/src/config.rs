//! Server settings (the CLI fills them from flags and the config file).

use std::sync::Arc;
use std::time::Duration;

use cardcheck_domain::BinTable;

/// How the server behaves; [`ServerConfig::default`] is the demo/dev profile.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Answer the sandbox catalogue's reserved cards (verification.md §3). On in the
    /// demo profile, off in production unless enabled.
    pub sandbox: bool,
    /// Luhn failures are `-7` for UnionPay and domestic BINs too (§2 step 6).
    pub strict_luhn: bool,
    /// Accept business parameters the action does not define instead of answering
    /// `UnknownParameter` (protocol.md §5: Tencent rejects them; newer SDKs may add
    /// model fields).
    pub allow_unknown_params: bool,
    /// Public host names a reverse proxy may have rewritten `Host` from (§1.6 7c).
    pub extra_hosts: Vec<String>,
    /// How long a loaded credential is trusted before it is read again: the bound on
    /// how late a revocation or an account-status change takes effect.
    pub credential_ttl: Duration,
    /// Longest a request may take from its first byte to its answer (a slow body
    /// included); past it the client gets `InternalError`.
    pub request_timeout: Duration,
    /// The BIN table (built-in plus operator extras).
    pub bins: Arc<BinTable>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            sandbox: true,
            strict_luhn: false,
            allow_unknown_params: false,
            extra_hosts: Vec::new(),
            credential_ttl: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            bins: BinTable::builtin_shared(),
        }
    }
}
