//! An HTTPS address on loopback in front of a sandbox: a certificate authority made for the
//! test signs the front's certificate (for `127.0.0.1` and `localhost`), and the front
//! relays the bytes of each connection to the sandbox's plain port.

#![allow(dead_code)]

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{ServerConfig, crypto::ring};

/// A running front: its `https://127.0.0.1:PORT` root, and its authority's certificate.
pub struct TlsFront {
    pub url: String,
    /// The certificate of the authority that signed the front's, in PEM.
    pub ca_pem: String,
}

impl TlsFront {
    /// A front for the plain-HTTP root `backend` (`http://127.0.0.1:PORT`).
    pub async fn start(backend: &str) -> TlsFront {
        TlsFront::serve(backend, certified("dbprov test authority")).await
    }

    /// A front whose certificate is an authority's own (CA:TRUE, self-signed), as
    /// `openssl req -x509` makes one.
    pub async fn start_as_authority(backend: &str) -> TlsFront {
        TlsFront::serve(backend, self_signed_authority()).await
    }

    async fn serve(backend: &str, (ca_pem, config): (String, ServerConfig)) -> TlsFront {
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let backend = backend.trim_start_matches("http://").to_owned();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing
                    // reaches the sandbox.
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront { url, ca_pem }
    }
}

/// An authority named `name` (its certificate in PEM), and a server configuration with a
/// certificate it signed for this machine's names.
fn certified(name: &str) -> (String, ServerConfig) {
    let mut authority = CertificateParams::new(Vec::<String>::new()).unwrap();
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    authority.distinguished_name.push(DnType::CommonName, name);
    let authority = CertifiedIssuer::self_signed(authority, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &authority)
        .unwrap();
    (authority.pem(), server_config(leaf.der().clone(), &key))
}

/// An authority's certificate for this machine's names, served as the server's own.
fn self_signed_authority() -> (String, ServerConfig) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    (
        certificate.pem(),
        server_config(certificate.der().clone(), &key),
    )
}

fn server_config(
    certificate: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    key: &KeyPair,
) -> ServerConfig {
    ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap()
}

/// The certificate of an authority that signed nothing the tests serve, in PEM.
pub fn unrelated_authority() -> String {
    certified("another authority").0
}
