//! TLS for clients on `tls-port`, with redis-server's option names, on rustls.
//!
//! [`TlsOptions`] holds the `tls-*` options as CONFIG GET shows them;
//! [`acceptor`] turns them into a rustls server configuration, reading the
//! certificate, key and CA files. Start-up builds it once, and CONFIG SET of
//! any `tls-*` option builds a new one (re-reading the files, as Redis's
//! `tlsConfigure`) that only new connections use; a failure leaves the old one
//! in place. Everything rustls cannot do is refused by name, never accepted
//! and ignored: TLSv1 and TLSv1.1, OpenSSL cipher strings other than a list of
//! suite names, encrypted private keys.
//!
//! Not for: the connection loop, which is generic over the stream and serves
//! a TLS stream as it serves a TCP one (`server.rs` accepts and hands over).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::TlsAcceptor;

/// `tls-auth-clients`: whether a client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthClients {
    /// Certificates are not asked for.
    No,
    /// A client without a certificate signed by the CA is refused (Redis's default).
    Yes,
    /// A certificate is asked for and checked if given; none is accepted.
    Optional,
}

impl AuthClients {
    /// As CONFIG GET shows it.
    pub fn name(self) -> &'static str {
        match self {
            AuthClients::No => "no",
            AuthClients::Yes => "yes",
            AuthClients::Optional => "optional",
        }
    }

    /// Reads `yes`, `no` or `optional`, with Redis's enum error text.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "no" => Ok(AuthClients::No),
            "yes" => Ok(AuthClients::Yes),
            "optional" => Ok(AuthClients::Optional),
            _ => Err("argument(s) must be one of the following: no, yes, optional".into()),
        }
    }
}

/// The `tls-*` options. Empty strings are "not set", as in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `tls-port`: 0 = no TLS listener.
    pub port: u16,
    /// `tls-cert-file`: the server's certificate chain, PEM.
    pub cert_file: String,
    /// `tls-key-file`: its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// `tls-key-file-pass`: only for an encrypted key, which rustls cannot
    /// read: such a key is refused whatever this says.
    pub key_file_pass: String,
    /// `tls-ca-cert-file`: CA certificates clients' certificates are checked against.
    pub ca_cert_file: String,
    /// `tls-ca-cert-dir`: a directory of CA certificates (every PEM file in it).
    pub ca_cert_dir: String,
    /// `tls-auth-clients`.
    pub auth_clients: AuthClients,
    /// `tls-protocols`: empty for Redis's default, `TLSv1.2 TLSv1.3`.
    pub protocols: String,
    /// `tls-ciphers`: TLS 1.2 suites, `:`-separated OpenSSL names.
    pub ciphers: String,
    /// `tls-ciphersuites`: TLS 1.3 suites, `:`-separated names.
    pub ciphersuites: String,
    /// `tls-prefer-server-ciphers`: choose by the server's order, not the client's.
    pub prefer_server_ciphers: bool,
    /// `tls-session-caching`: let clients resume a session.
    pub session_caching: bool,
    /// `tls-session-cache-size`: sessions kept for resumption.
    pub session_cache_size: usize,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            port: 0,
            cert_file: String::new(),
            key_file: String::new(),
            key_file_pass: String::new(),
            ca_cert_file: String::new(),
            ca_cert_dir: String::new(),
            auth_clients: AuthClients::Yes,
            protocols: String::new(),
            ciphers: String::new(),
            ciphersuites: String::new(),
            prefer_server_ciphers: false,
            session_caching: true,
            session_cache_size: 20 * 1024,
        }
    }
}

/// TLS 1.2 suites rustls offers: their OpenSSL name (as `tls-ciphers` takes
/// them), their IANA name.
const TLS12_SUITES: &[(&[&str], CipherSuite)] = &[
    (
        &[
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ],
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        &[
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ],
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        &[
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ],
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        &[
            "ECDHE-RSA-AES128-GCM-SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ],
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        &[
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ],
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        &[
            "ECDHE-RSA-CHACHA20-POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ],
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.3 suites rustls offers, by the name `tls-ciphersuites` takes.
const TLS13_SUITES: &[(&[&str], CipherSuite)] = &[
    (
        &["TLS_AES_128_GCM_SHA256"],
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        &["TLS_AES_256_GCM_SHA384"],
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        &["TLS_CHACHA20_POLY1305_SHA256"],
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// Reads `tls-protocols` (space-separated, case-insensitive): which of TLS 1.2
/// and 1.3 to offer. TLSv1 and TLSv1.1, which Redis accepts from OpenSSL, are
/// refused: rustls does not implement them.
pub fn parse_protocols(value: &str) -> Result<(bool, bool), String> {
    if value.trim().is_empty() {
        return Ok((true, true));
    }
    let (mut v12, mut v13) = (false, false);
    for word in value.split_whitespace() {
        match word.to_ascii_lowercase().as_str() {
            "tlsv1.2" => v12 = true,
            "tlsv1.3" => v13 = true,
            "tlsv1" | "tlsv1.1" => {
                return Err(format!(
                    "{word} is not supported by latchkey (rustls offers TLSv1.2 and TLSv1.3 only)"
                ))
            }
            _ => {
                return Err(
                    "Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'."
                        .into(),
                )
            }
        }
    }
    Ok((v12, v13))
}

/// Reads a `:`-separated suite list against `known` (its names, case-sensitive
/// as OpenSSL's), in the order given. Anything else — OpenSSL's keywords and
/// operators (`HIGH`, `!aNULL`, `@STRENGTH`) or a suite rustls lacks — is
/// refused with the names that can be used.
fn parse_suites(
    option: &str,
    value: &str,
    known: &[(&[&str], CipherSuite)],
) -> Result<Vec<CipherSuite>, String> {
    let mut out = Vec::new();
    for name in value.split(':').map(str::trim).filter(|n| !n.is_empty()) {
        let suite = known
            .iter()
            .find(|(names, _)| names.contains(&name))
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|(n, _)| n[0]).collect();
                format!(
                    "{option}: '{name}' cannot be applied by latchkey (rustls); list suites by name from: {}",
                    names.join(":")
                )
            })?;
        if !out.contains(&suite) {
            out.push(suite);
        }
    }
    Ok(out)
}

/// `tls-ciphers` as suites, in the order given (empty: rustls's default).
pub fn parse_ciphers(value: &str) -> Result<Vec<CipherSuite>, String> {
    parse_suites("tls-ciphers", value, TLS12_SUITES)
}

/// `tls-ciphersuites` as suites, in the order given (empty: rustls's default).
pub fn parse_ciphersuites(value: &str) -> Result<Vec<CipherSuite>, String> {
    parse_suites("tls-ciphersuites", value, TLS13_SUITES)
}

/// The crypto provider (ring) with the suites `tls-ciphers` and
/// `tls-ciphersuites` allow, in their order when given.
fn provider(opts: &TlsOptions, v12: bool, v13: bool) -> Result<CryptoProvider, String> {
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
    // exchange (neither has the OpenSSL 3.0 Redis 7.0 is built with); ring
    // builds with no cmake step, aws-lc-rs would need one.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    let all = std::mem::take(&mut provider.cipher_suites);
    let pick = |wanted: &[CipherSuite], tls13: bool| -> Vec<SupportedCipherSuite> {
        let of_version = all.iter().filter(|s| s.tls13().is_some() == tls13);
        if wanted.is_empty() {
            of_version.copied().collect()
        } else {
            wanted
                .iter()
                .filter_map(|w| all.iter().find(|s| s.suite() == *w).copied())
                .collect()
        }
    };
    let mut suites = Vec::new();
    if v13 {
        suites.extend(pick(&parse_ciphersuites(&opts.ciphersuites)?, true));
    }
    if v12 {
        suites.extend(pick(&parse_ciphers(&opts.ciphers)?, false));
    }
    if suites.is_empty() {
        return Err("no cipher suite left for the protocols in tls-protocols".into());
    }
    provider.cipher_suites = suites;
    Ok(provider)
}

/// Reads every certificate of a PEM file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// Reads the private key. An encrypted one is refused, naming the fix:
/// rustls reads only unencrypted keys, so `tls-key-file-pass` cannot be applied.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let encrypted = String::from_utf8_lossy(&text);
    if encrypted.contains("ENCRYPTED PRIVATE KEY") || encrypted.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "{}: the key is encrypted, and latchkey (rustls) reads only unencrypted keys, so tls-key-file-pass cannot be applied; decrypt it (openssl pkey -in KEY -out KEY.plain) and keep that file private",
            path.display()
        ));
    }
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The CA certificates of `tls-ca-cert-file` and `tls-ca-cert-dir`.
fn roots(opts: &TlsOptions) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let mut files: Vec<PathBuf> = Vec::new();
    if !opts.ca_cert_file.is_empty() {
        files.push(PathBuf::from(&opts.ca_cert_file));
    }
    if !opts.ca_cert_dir.is_empty() {
        let dir = std::fs::read_dir(&opts.ca_cert_dir)
            .map_err(|e| format!("{}: {e}", opts.ca_cert_dir))?;
        let mut in_dir: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        in_dir.sort();
        // Files in the directory that hold no certificate are passed over, as
        // OpenSSL's hashed-directory lookup never reads them.
        for path in in_dir {
            if let Ok(certs) = certificates(&path) {
                for cert in certs {
                    store
                        .add(cert)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
        }
    }
    for path in files {
        for cert in certificates(&path)? {
            store
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(store)
}

/// Builds the TLS acceptor from the options, reading every file now. The
/// error is the reason, for the log (and the start-up error).
pub fn acceptor(opts: &TlsOptions) -> Result<TlsAcceptor, String> {
    if opts.cert_file.is_empty() {
        return Err("No tls-cert-file configured!".into());
    }
    if opts.key_file.is_empty() {
        return Err("No tls-key-file configured!".into());
    }
    if opts.auth_clients != AuthClients::No
        && opts.ca_cert_file.is_empty()
        && opts.ca_cert_dir.is_empty()
    {
        return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!".into());
    }
    let (v12, v13) = parse_protocols(&opts.protocols)?;
    let provider = Arc::new(provider(opts, v12, v13)?);
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if v13 {
        versions.push(&rustls::version::TLS13);
    }
    if v12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("Failed to configure ciphers: {e}"))?;
    let builder = match opts.auth_clients {
        AuthClients::No => builder.with_no_client_auth(),
        auth => {
            let roots = Arc::new(roots(opts)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                format!("Failed to configure CA certificate(s) file/directory: {e}")
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certs = certificates(Path::new(&opts.cert_file))
        .map_err(|e| format!("Failed to load certificate: {e}"))?;
    let key = private_key(Path::new(&opts.key_file))
        .map_err(|e| format!("Failed to load private key: {e}"))?;
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("Failed to load private key: {}: {e}", opts.key_file))?;
    config.ignore_client_order = opts.prefer_server_ciphers;
    if opts.session_caching && opts.session_cache_size > 0 {
        config.session_storage =
            rustls::server::ServerSessionMemoryCache::new(opts.session_cache_size);
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_take_tls12_and_tls13_and_refuse_older_ones() {
        assert_eq!(parse_protocols(""), Ok((true, true)));
        assert_eq!(parse_protocols("TLSv1.2"), Ok((true, false)));
        assert_eq!(parse_protocols("tlsv1.3 TLSv1.2"), Ok((true, true)));
        assert!(parse_protocols("TLSv1.1").unwrap_err().contains("rustls"));
        assert!(parse_protocols("SSLv3")
            .unwrap_err()
            .starts_with("Invalid tls-protocols specified."));
    }

    #[test]
    fn cipher_lists_take_suite_names_and_refuse_openssl_keywords() {
        assert_eq!(
            parse_ciphers("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"),
            Ok(vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            ])
        );
        assert_eq!(
            parse_ciphers("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            Ok(vec![CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256])
        );
        for bad in [
            "DEFAULT",
            "HIGH:!aNULL",
            "AES128-SHA",
            "ECDHE-RSA-AES128-SHA",
        ] {
            assert!(parse_ciphers(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_ciphersuites("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
            Ok(vec![
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS13_AES_128_GCM_SHA256
            ])
        );
        assert!(parse_ciphersuites("TLS_AES_128_CCM_SHA256").is_err());
    }

    #[test]
    fn a_missing_certificate_or_ca_is_named() {
        let mut opts = TlsOptions::default();
        assert_eq!(
            acceptor(&opts).err().as_deref(),
            Some("No tls-cert-file configured!")
        );
        opts.cert_file = "/nonexistent/cert.pem".into();
        opts.key_file = "/nonexistent/key.pem".into();
        assert!(acceptor(&opts)
            .err()
            .unwrap()
            .starts_with("Either tls-ca-cert-file or tls-ca-cert-dir"));
        opts.auth_clients = AuthClients::No;
        assert!(acceptor(&opts)
            .err()
            .unwrap()
            .starts_with("Failed to load certificate: /nonexistent/cert.pem"));
    }

    #[test]
    fn an_encrypted_key_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("latchkey-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = private_key(&key).unwrap_err();
        assert!(err.contains("tls-key-file-pass cannot be applied"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
