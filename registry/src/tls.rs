//! TLS for registry connections, with the system's root certificates read
//! at the first certificate to verify rather than when the client is made:
//! reading and parsing them (every file of `/etc/ssl/certs`, ~5-10 ms)
//! is time a build that pulls from a plain-HTTP registry (loopback or
//! insecure) or from none never needs, and it was spent before the first
//! request of every build.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::RegistryError;

/// Makes the verifier that does the work.
type MakeVerifier =
    dyn Fn(Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> + Send + Sync;

/// A certificate verifier that makes the real one (the platform's, over
/// the system's roots, unless told otherwise) the first time a
/// certificate is to be verified, and keeps it (or the failure to make
/// it) for every later handshake.
pub(crate) struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    make: Box<MakeVerifier>,
    made: OnceLock<Result<Arc<dyn ServerCertVerifier>, rustls::Error>>,
}

impl std::fmt::Debug for LazyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyVerifier")
            .field("made", &self.made.get().map(Result::is_ok))
            .finish_non_exhaustive()
    }
}

impl LazyVerifier {
    /// A verifier whose work `make` sets up on first use.
    pub(crate) fn new(provider: Arc<CryptoProvider>, make: Box<MakeVerifier>) -> Self {
        Self {
            provider,
            make,
            made: OnceLock::new(),
        }
    }

    /// The platform's verifier over the system's root certificates.
    fn platform(provider: Arc<CryptoProvider>) -> Self {
        Self::new(
            provider,
            Box::new(|provider| {
                let verifier = rustls_platform_verifier::Verifier::new(provider)?;
                Ok(Arc::new(verifier) as Arc<dyn ServerCertVerifier>)
            }),
        )
    }

    fn verifier(&self) -> Result<&Arc<dyn ServerCertVerifier>, rustls::Error> {
        self.made
            .get_or_init(|| (self.make)(self.provider.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    /// The provider's schemes, as the platform's verifier gives them:
    /// asked for every ClientHello, before any certificate arrives.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The crypto provider reqwest would use: the process default if one is
/// installed, else aws-lc-rs.
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// A client TLS configuration as reqwest makes by default (TLS 1.2 and
/// 1.3, HTTP/1.1 by ALPN, SNI) whose certificates `verifier` checks.
pub(crate) fn client_config_with(
    provider: Arc<CryptoProvider>,
    verifier: LazyVerifier,
) -> Result<rustls::ClientConfig, RegistryError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| RegistryError::Other(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client TLS configuration of registry connections: the platform's
/// verifier over the system's roots, made at the first handshake.
pub(crate) fn client_config() -> Result<rustls::ClientConfig, RegistryError> {
    let provider = provider();
    client_config_with(provider.clone(), LazyVerifier::platform(provider))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;

    /// A test CA and a leaf it signed for 127.0.0.1 (`openssl`, P-256,
    /// valid for 100 years).
    const CA: &[u8] = include_bytes!("../testdata/tls/ca.der");
    const LEAF: &[u8] = include_bytes!("../testdata/tls/leaf.der");
    const LEAF_KEY: &[u8] = include_bytes!("../testdata/tls/leaf.key.der");

    /// Serves `connections` HTTP/1.1 requests, each with `ok`, over TLS
    /// with the leaf certificate when `tls`, else in plain text; its port.
    fn serve(tls: bool, connections: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![CertificateDer::from(LEAF.to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(LEAF_KEY.to_vec())),
                )
                .unwrap(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let stream = stream.unwrap();
                let _ = if tls {
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    answer(rustls::StreamOwned::new(conn, stream))
                } else {
                    answer(stream)
                };
            }
        });
        port
    }

    /// Reads one request's head and answers `ok`, closing the connection.
    fn answer(mut stream: impl Read + Write) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte)?;
            head.push(byte[0]);
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")?;
        stream.flush()
    }

    fn client(config: rustls::ClientConfig) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .build()
            .unwrap()
    }

    async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
        let answer = client.get(url).send().await.map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            message
        })?;
        answer.text().await.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn roots_are_read_at_the_first_certificate_only() {
        let made = Arc::new(AtomicUsize::new(0));
        let counted = made.clone();
        // The test CA as the only root, counting how often it is set up.
        let verifier = LazyVerifier::new(
            provider(),
            Box::new(move |provider| {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut roots = rustls::RootCertStore::empty();
                roots.add(CertificateDer::from(CA.to_vec())).unwrap();
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
                Ok(verifier as Arc<dyn ServerCertVerifier>)
            }),
        );
        let client = client(client_config_with(provider(), verifier).unwrap());
        let plain = serve(false, 1);
        let answer = get(&client, &format!("http://127.0.0.1:{plain}/v2/")).await;
        assert_eq!(answer.as_deref(), Ok("ok"));
        assert_eq!(made.load(Ordering::SeqCst), 0, "plain HTTP read the roots");
        let tls = serve(true, 2);
        for _ in 0..2 {
            let answer = get(&client, &format!("https://127.0.0.1:{tls}/v2/")).await;
            assert_eq!(answer.as_deref(), Ok("ok"));
        }
        assert_eq!(made.load(Ordering::SeqCst), 1, "the roots were set up once");
    }

    #[tokio::test]
    async fn a_certificate_the_system_does_not_trust_is_refused() {
        let client = client(client_config().unwrap());
        let tls = serve(true, 1);
        let refused = get(&client, &format!("https://127.0.0.1:{tls}/v2/"))
            .await
            .unwrap_err();
        assert!(
            refused.contains("certificate") || refused.contains("issuer"),
            "{refused}"
        );
    }
}
