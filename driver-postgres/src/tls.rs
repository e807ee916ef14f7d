//! TLS to the server with rustls (feature `tls`).

use session_kit_core::DriverError;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connector trusting the public web roots and, if given, the authorities in `ca_file`.
pub(crate) fn connector(ca_file: Option<&str>) -> Result<MakeRustlsConnect, DriverError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            DriverError::config(format!("option `tls_ca_file`: cannot read {path}: {e}"))
        })?;
        let mut added = 0;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer<'static> = cert
                .map_err(|e| DriverError::config(format!("option `tls_ca_file`: {path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| DriverError::config(format!("option `tls_ca_file`: {path}: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(DriverError::config(format!(
                "option `tls_ca_file`: {path} holds no PEM certificate"
            )));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DriverError::config(format!("postgres tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
