//! How requests reach an API: the certificates trusted beside the built-in roots, and the
//! proxy that carries them (none for this machine's own addresses).

use std::path::{Path, PathBuf};

use reqwest::{Certificate, ClientBuilder, Url};

/// What the HTTP clients of a job trust, and how they reach a host.
///
/// The roots are Mozilla's (built in), the system's store (which honours `SSL_CERT_FILE`
/// and `SSL_CERT_DIR`), and `--ca-cert`'s bundle. Proxies come from `HTTPS_PROXY`,
/// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, as reqwest reads them.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// `--ca-cert`'s certificates.
    extra_roots: Vec<Certificate>,
}

/// Why `--ca-cert` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    /// The file cannot be read.
    #[error("cannot read --ca-cert {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds a certificate that cannot be used.
    #[error("--ca-cert {} holds {why}: give the certificate authority's certificate in PEM", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The file holds no PEM certificate.
    #[error(
        "--ca-cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the certificate authority's certificate in PEM",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
}

impl Transport {
    /// Trusts the certificates of the PEM bundle `ca_cert` too, if one is given.
    pub fn new(ca_cert: Option<&Path>) -> Result<Transport, CaCertError> {
        let Some(path) = ca_cert else {
            return Ok(Transport::default());
        };
        let pem = std::fs::read(path).map_err(|source| CaCertError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let unusable = |why: &str| CaCertError::Unusable {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let no_certificate = || match pem.windows(10).any(|w| w == b"-----BEGIN") {
            true => unusable("a PEM block that cannot be read (damaged, or cut short?)"),
            false => CaCertError::NoCertificate {
                path: path.to_owned(),
            },
        };
        let extra_roots = Certificate::from_pem_bundle(&pem).map_err(|_| no_certificate())?;
        if extra_roots.is_empty() {
            return Err(no_certificate());
        }
        // A block that is PEM but no certificate (a damaged one) is refused now, naming
        // the file, not as "cannot set up the HTTP client".
        let mut trial = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .tls_built_in_native_certs(false)
            .tls_built_in_webpki_certs(false);
        for root in &extra_roots {
            trial = trial.add_root_certificate(root.clone());
        }
        if trial.build().is_err() {
            return Err(unusable("a PEM block that is no valid certificate"));
        }
        Ok(Transport { extra_roots })
    }

    /// `builder` with these roots, and without any proxy when `url` is this machine's.
    pub fn apply(&self, mut builder: ClientBuilder, url: &Url) -> ClientBuilder {
        for root in &self.extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if !proxied(url) {
            builder = builder.no_proxy();
        }
        builder
    }
}

/// Whether requests to `url` may go through the environment's proxy: only to another
/// machine, and only over https, where the proxy carries a TLS tunnel (`CONNECT`) and
/// never sees the key. A proxy for a local address would take the request off the machine
/// (the sandbox, with HTTP_PROXY set for the rest); one for plain http would be handed the
/// key in clear.
pub fn proxied(url: &Url) -> bool {
    url.scheme() == "https" && !is_loopback(url)
}

/// Whether `url` names this machine: `localhost` or a loopback address.
pub fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// What is wrong with the API's certificate, when that is why no connection was made:
/// no retry mends it, and the operator has to give the job the authority that signed it.
pub(super) fn untrusted(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(rustls::Error::InvalidCertificate(problem)) = tls_error(cause) {
            return Some(certificate_problem(problem));
        }
        source = cause.source();
    }
    None
}

/// The TLS error in `error`, or wrapped in it by I/O errors (which hide what they wrap
/// from `source()`): rustls' error reaches reqwest inside two of them.
fn tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

/// A certificate's problem, in words.
fn certificate_problem(problem: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match problem {
        E::UnknownIssuer => {
            "it is signed by a certificate authority this job does not trust".to_owned()
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "it was issued for another host name".to_owned()
        }
        E::Expired | E::ExpiredContext { .. } => "it has expired".to_owned(),
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
        // webpki's own error, which rustls passes on as "other".
        other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "it is a certificate authority's certificate (CA:TRUE) used as the server's own: give the server a certificate signed by that authority, and --ca-cert the authority's".to_owned()
        }
        other => format!("it was refused ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_localhost_and_the_loopback_addresses_only() {
        for local in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:1",
            "http://LOCALHOST.",
            "https://api.localhost",
            "http://[::1]:80",
        ] {
            assert!(is_loopback(&Url::parse(local).unwrap()), "{local}");
        }
        for remote in [
            "https://api.usedatabrain.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::2]",
            "http://0.0.0.0",
        ] {
            assert!(!is_loopback(&Url::parse(remote).unwrap()), "{remote}");
        }
    }

    #[test]
    fn only_https_to_another_machine_goes_through_a_proxy() {
        for (url, proxied_) in [
            ("https://api.usedatabrain.com", true),
            ("https://10.1.2.3:8443/databrain", true),
            ("http://databrain.internal", false),
            ("https://127.0.0.1:8443", false),
            ("https://localhost", false),
            ("http://[::1]:8080", false),
        ] {
            assert_eq!(proxied(&Url::parse(url).unwrap()), proxied_, "{url}");
        }
    }

    #[test]
    fn a_ca_cert_that_is_not_pem_is_refused_with_what_to_give() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = Transport::new(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let missing = dir.path().join("missing.pem");
        let error = Transport::new(Some(&missing)).unwrap_err().to_string();
        assert!(error.starts_with("cannot read --ca-cert"), "{error}");
    }
}
