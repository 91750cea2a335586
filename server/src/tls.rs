//! TLS on the binary port, with rustls (ring provider) through `monoio-rustls`: loading a PEM
//! certificate chain and key ([`load_pem`]), and the server side of a handshake with a timeout and
//! a per-core cap on handshakes in progress ([`accept`]). What runs inside the TLS stream is
//! sniffed again by [`crate::port_sharing`]: binary rpcx, the gateway, JSON-RPC and CONNECT alike.
//!
//! It does not do client certificates (Go's `Option.TLSConfig` with a plain server config does
//! not ask for them either) or ALPN.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use monoio_rustls::{ServerTlsStream, TlsAcceptor};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::cold_tcp::ColdTcp;
use crate::config::ServerConfig;
use crate::limits::{ConnectionWatch, Reason};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the certificate chain from {path}: {source}")]
    Certificates {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("cannot read the private key from {path}: {source}")]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server configuration from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1), with rustls's safe defaults (TLS 1.2 and 1.3).
pub fn load_pem(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsSetupError::Certificates {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

thread_local! {
    /// Handshakes in progress on this worker: one thread per core, so this is the core's count.
    static HANDSHAKES: Cell<usize> = const { Cell::new(0) };
}

/// Counts one handshake in progress for as long as it lives.
struct HandshakeSlot;

impl HandshakeSlot {
    fn take(max: usize) -> Option<HandshakeSlot> {
        HANDSHAKES.with(|n| {
            (n.get() < max).then(|| {
                n.set(n.get() + 1);
                HandshakeSlot
            })
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        HANDSHAKES.with(|n| n.set(n.get() - 1));
    }
}

/// Runs the server side of a TLS handshake on `stream` within the configured timeout, if this core
/// has room for one more handshake; `None` (logged and counted) otherwise.
pub async fn accept(
    stream: ColdTcp,
    tls: &Arc<rustls::ServerConfig>,
    config: &ServerConfig,
    watch: &ConnectionWatch,
) -> Option<ServerTlsStream<ColdTcp>> {
    let Some(_slot) = HandshakeSlot::take(config.max_tls_handshakes) else {
        watch.refuse(Reason::TlsHandshakeCap, None);
        return None;
    };
    let acceptor = TlsAcceptor::from(tls.clone());
    match monoio::time::timeout(config.tls_handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            watch.refuse(Reason::TlsHandshake, Some(&e));
            None
        }
        Err(_) => {
            watch.refuse(Reason::TlsHandshake, Some(&"timed out"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_cap_counts_slots_in_use() {
        let a = HandshakeSlot::take(2).unwrap();
        let _b = HandshakeSlot::take(2).unwrap();
        assert!(HandshakeSlot::take(2).is_none());
        drop(a);
        assert!(HandshakeSlot::take(2).is_some());
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = load_pem(Path::new("/nonexistent.pem"), Path::new("/nonexistent.key")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
    }
}
