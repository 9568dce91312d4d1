//! TLS on `tls-port`, protected mode and protected configs, with certificates
//! rcgen makes for each test in a temporary directory: redis-cli `--tls`, the
//! `redis` crate over `rediss://`, a raw rustls client with and without a
//! certificate, and CONFIG SET of a new certificate.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use latchkey::{Server, ServerHandle};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and the server and client certificates it signed, as PEM files.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a fresh CA with a server certificate (localhost, 127.0.0.1) and a
/// client certificate into a directory named after `name`.
fn make_pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("latchkey-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("latchkey test CA {name}"),
    );
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, file: &str| {
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{file}.crt")),
            dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    };
    let (cert, key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "server");
    let (client_cert, client_key) = leaf(vec!["client".into()], "client");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    Pki {
        dir,
        ca,
        cert,
        key,
        client_cert,
        client_key,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A free TCP port on 127.0.0.1 (bound and let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An embedded server with TLS on a free port, `auth` as tls-auth-clients,
/// plus `extra` options; `port 0` in `extra` keeps its plain port (the
/// builder's free one) — pass `plain = false` for TLS only.
async fn tls_server(pki: &Pki, auth: &str, plain: bool) -> ServerHandle {
    // The ports are probed free and bound a moment later: a test running
    // beside may take one in between (AddrInUse), and then new ones are
    // probed.
    for _ in 0..4 {
        match try_tls_server(pki, auth, plain).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            started => return started.expect("server starts"),
        }
    }
    try_tls_server(pki, auth, plain)
        .await
        .expect("server starts")
}

async fn try_tls_server(pki: &Pki, auth: &str, plain: bool) -> std::io::Result<ServerHandle> {
    let mut b = Server::builder()
        .option("tls-port", &free_port().to_string())
        .unwrap()
        .option("tls-cert-file", s(&pki.cert))
        .unwrap()
        .option("tls-key-file", s(&pki.key))
        .unwrap()
        .option("tls-ca-cert-file", s(&pki.ca))
        .unwrap()
        .option("tls-auth-clients", auth)
        .unwrap();
    if plain {
        b = b.option("port", &free_port().to_string()).unwrap();
    }
    b.start().await
}

/// A rustls client trusting `ca`, presenting `client` (cert, key) if given.
fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            b.with_client_auth_cert(certs, PrivateKeyDer::from_pem_file(key).unwrap())
                .unwrap()
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects over TLS, sends PING, and returns the reply line, or the error
/// (handshake, or a closed connection) as text.
async fn tls_ping(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> String {
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = match connector.connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => return format!("handshake failed: {e}"),
    };
    if let Err(e) = tls.write_all(b"PING\r\n").await {
        return format!("write failed: {e}");
    }
    let mut buf = vec![0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
        Ok(Ok(0)) => "closed".into(),
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Ok(Err(e)) => format!("read failed: {e}"),
        Err(_) => "timed out".into(),
    }
}

#[tokio::test]
async fn tls_auth_clients_yes_refuses_a_client_without_a_certificate() {
    let pki = make_pki("auth-yes");
    let server = tls_server(&pki, "yes", false).await;
    let addr = server.tls_addr().expect("tls listener");
    let with = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    assert_eq!(tls_ping(addr, with).await, "+PONG\r\n");
    let without = tls_ping(addr, client_config(&pki.ca, None)).await;
    assert!(!without.contains("PONG"), "{without}");
    // A certificate from another CA is refused too.
    let other = make_pki("auth-yes-other");
    let stranger = client_config(&pki.ca, Some((&other.client_cert, &other.client_key)));
    let got = tls_ping(addr, stranger).await;
    assert!(!got.contains("PONG"), "{got}");
}

#[tokio::test]
async fn tls_auth_clients_no_and_optional_accept_a_client_without_a_certificate() {
    let pki = make_pki("auth-no");
    for auth in ["no", "optional"] {
        let server = tls_server(&pki, auth, false).await;
        let addr = server.tls_addr().unwrap();
        assert_eq!(
            tls_ping(addr, client_config(&pki.ca, None)).await,
            "+PONG\r\n",
            "{auth}"
        );
        let with = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
        assert_eq!(tls_ping(addr, with).await, "+PONG\r\n", "{auth}");
        if auth == "optional" {
            // Optional still checks a certificate that is given.
            let other = make_pki("auth-optional-other");
            let stranger = client_config(&pki.ca, Some((&other.client_cert, &other.client_key)));
            let got = tls_ping(addr, stranger).await;
            assert!(!got.contains("PONG"), "{got}");
        }
    }
}

#[tokio::test]
async fn plain_port_and_tls_port_serve_side_by_side_and_port_0_is_tls_only() {
    let pki = make_pki("side");
    let server = tls_server(&pki, "no", true).await;
    let mut plain = common::connect(&server).await;
    let pong: String = redis::cmd("PING").query_async(&mut plain).await.unwrap();
    assert_eq!(pong, "PONG");
    let addr = server.tls_addr().unwrap();
    assert_eq!(
        tls_ping(addr, client_config(&pki.ca, None)).await,
        "+PONG\r\n"
    );
    // Plain text on the TLS port gets no Redis reply.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"PING\r\n").await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("PONG"));

    let tls_only = tls_server(&pki, "no", false).await;
    assert!(
        tls_only.addr().port() == 0,
        "no plain listener: {}",
        tls_only.addr()
    );
    assert_eq!(
        tls_ping(tls_only.tls_addr().unwrap(), client_config(&pki.ca, None)).await,
        "+PONG\r\n"
    );
}

#[tokio::test]
async fn the_redis_crate_talks_over_rediss_with_a_client_certificate() {
    let pki = make_pki("redis-rs");
    let server = tls_server(&pki, "yes", false).await;
    let addr = server.tls_addr().unwrap();
    let url = format!("rediss://localhost:{}", addr.port());
    let client = redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(&pki.client_cert).unwrap(),
                client_key: std::fs::read(&pki.client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&pki.ca).unwrap()),
        },
    )
    .unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg("k")
        .arg("over tls")
        .query_async(&mut con)
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "over tls");
    assert_eq!(server.get("k").as_deref(), Some(&b"over tls"[..]));
}

#[tokio::test]
async fn config_set_of_a_new_certificate_serves_new_connections_with_it() {
    let first = make_pki("reload-1");
    let second = make_pki("reload-2");
    let server = tls_server(&first, "no", true).await;
    let addr = server.tls_addr().unwrap();
    let trusts_first = client_config(&first.ca, None);
    let trusts_second = client_config(&second.ca, None);
    assert_eq!(tls_ping(addr, trusts_first.clone()).await, "+PONG\r\n");
    assert!(tls_ping(addr, trusts_second.clone())
        .await
        .starts_with("handshake failed"));

    let mut admin = common::connect(&server).await;
    // A file that is not there: refused with Redis's text, old config kept.
    let err = common::err_line(
        &mut admin,
        &["CONFIG", "SET", "tls-cert-file", "/nonexistent/cert.pem"],
    )
    .await;
    assert_eq!(
        err,
        "ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs."
    );
    let cert: String = redis::cmd("CONFIG")
        .arg("GET")
        .arg("tls-cert-file")
        .query_async::<Vec<String>>(&mut admin)
        .await
        .unwrap()
        .remove(1);
    assert_eq!(cert, s(&first.cert));
    assert_eq!(tls_ping(addr, trusts_first.clone()).await, "+PONG\r\n");

    // A connection made before the change keeps its session.
    let connector = tokio_rustls::TlsConnector::from(trusts_first.clone());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut before = connector.connect(name, tcp).await.unwrap();

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-cert-file")
        .arg(s(&second.cert))
        .arg("tls-key-file")
        .arg(s(&second.key))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(tls_ping(addr, trusts_second).await, "+PONG\r\n");
    assert!(tls_ping(addr, trusts_first)
        .await
        .starts_with("handshake failed"));
    before.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    before.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");

    // tls-auth-clients yes without a CA: refused, as Redis's tlsConfigure.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-ca-cert-file")
        .arg("")
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = common::err_line(&mut admin, &["CONFIG", "SET", "tls-auth-clients", "yes"]).await;
    assert!(err.contains("Unable to update TLS configuration"), "{err}");
}

#[tokio::test]
async fn tls_options_rustls_cannot_apply_are_refused() {
    let server = common::start().await;
    let mut con = common::connect(&server).await;
    for (name, value) in [
        ("tls-protocols", "TLSv1.1"),
        ("tls-ciphers", "HIGH:!aNULL"),
        ("tls-ciphersuites", "TLS_AES_128_CCM_SHA256"),
        ("tls-auth-clients", "maybe"),
    ] {
        let err = common::err_line(&mut con, &["CONFIG", "SET", name, value]).await;
        assert!(
            err.starts_with(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}')"
            )),
            "{name}: {err}"
        );
    }
    // And at start-up, naming the reason.
    let pki = make_pki("encrypted");
    std::fs::write(
        &pki.key,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = Server::builder()
        .option("tls-port", &free_port().to_string())
        .unwrap()
        .option("tls-cert-file", s(&pki.cert))
        .unwrap()
        .option("tls-key-file", s(&pki.key))
        .unwrap()
        .option("tls-key-file-pass", "secret")
        .unwrap()
        .option("tls-auth-clients", "no")
        .unwrap()
        .start()
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("tls-key-file-pass cannot be applied"),
        "{err}"
    );
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn redis_cli_connects_to_the_binary_over_tls() {
    let pki = make_pki("cli");
    let port = free_port().to_string();
    let _server = common::binary::spawn_on_socket(
        "tls-cli",
        &[
            "--tls-port",
            &port,
            "--tls-cert-file",
            s(&pki.cert),
            "--tls-key-file",
            s(&pki.key),
            "--tls-ca-cert-file",
            s(&pki.ca),
        ],
    );
    let port: u16 = port.parse().unwrap();
    let ca = s(&pki.ca);
    let mutual = [
        "--tls",
        "--cacert",
        ca,
        "--cert",
        s(&pki.client_cert),
        "--key",
        s(&pki.client_key),
    ];
    let mut set = mutual.to_vec();
    set.extend(["SET", "k", "v"]);
    assert_eq!(redis_cli(port, &set).trim(), "OK");
    let mut get = mutual.to_vec();
    get.extend(["GET", "k"]);
    assert_eq!(redis_cli(port, &get).trim(), "v");
    // No client certificate under tls-auth-clients yes (the default): refused.
    let refused = redis_cli(port, &["--tls", "--cacert", ca, "PING"]);
    assert!(!refused.contains("PONG"), "{refused}");
    // The CA only, once certificates are optional.
    let mut off = mutual.to_vec();
    off.extend(["CONFIG", "SET", "tls-auth-clients", "optional"]);
    assert_eq!(redis_cli(port, &off).trim(), "OK");
    assert_eq!(
        redis_cli(port, &["--tls", "--cacert", ca, "PING"]).trim(),
        "PONG"
    );
}

/// This machine's first non-loopback IPv4 address, if it has one.
fn outside_address() -> Option<IpAddr> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut at = addrs;
    while !at.is_null() {
        // SAFETY: `at` walks the list getifaddrs returned, which is alive.
        let entry = unsafe { &*at };
        if !entry.ifa_addr.is_null() {
            // SAFETY: checked not null; the family says how to read it.
            let family = unsafe { (*entry.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found = Some(IpAddr::V4(ip));
                    break;
                }
            }
        }
        at = entry.ifa_next;
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

/// Reads what the server sends until it closes (5 s at most).
async fn read_to_close(s: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn protected_mode_denies_non_loopback_clients_without_a_password() {
    let Some(outside) = outside_address() else {
        eprintln!("skipped: this machine has no non-loopback IPv4 address");
        return;
    };
    let sock = std::env::temp_dir().join(format!("latchkey-{}-protected.sock", std::process::id()));
    let server = Server::builder()
        .bind("0.0.0.0")
        .unixsocket(&sock)
        .start()
        .await
        .unwrap();
    let port = server.addr().port();
    // From the machine's own outside address: Redis's DENIED text, then closed.
    let mut far = tokio::net::TcpStream::connect((outside, port))
        .await
        .unwrap();
    far.write_all(b"PING\r\n").await.unwrap();
    let got = read_to_close(&mut far).await;
    assert_eq!(got, latchkey::server::PROTECTED_MODE_DENIED);
    assert!(got.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user."));
    // Loopback and the Unix socket are not refused.
    let mut near = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    common::send(&mut near, &["PING"]).await;
    common::expect_reply(&mut near, "+PONG\r\n").await;
    let mut unix = tokio::net::UnixStream::connect(&sock).await.unwrap();
    unix.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    unix.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    // `protected-mode no`, or a password, lets the outside in.
    let mut con = common::connect(&server).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("protected-mode")
        .arg("no")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut far = tokio::net::TcpStream::connect((outside, port))
        .await
        .unwrap();
    common::send(&mut far, &["PING"]).await;
    common::expect_reply(&mut far, "+PONG\r\n").await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("protected-mode")
        .arg("yes")
        .arg("requirepass")
        .arg("pw")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut far = tokio::net::TcpStream::connect((outside, port))
        .await
        .unwrap();
    common::send(&mut far, &["PING"]).await;
    common::expect_reply(&mut far, "-NOAUTH Authentication required.\r\n").await;
    let info: String = redis::cmd("AUTH")
        .arg("pw")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(info, "OK");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(info.contains("rejected_connections:1\r\n"), "{info}");
    drop(server);
    let _ = std::fs::remove_file(&sock);
}

#[tokio::test]
async fn protected_configs_follow_enable_protected_configs() {
    let dir = std::env::temp_dir().to_string_lossy().into_owned();
    // Default `no`: refused even from loopback.
    let server = common::start().await;
    let mut con = common::connect(&server).await;
    let err = common::err_line(&mut con, &["CONFIG", "SET", "dir", &dir]).await;
    assert_eq!(
        err,
        "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config"
    );
    let err = common::err_line(&mut con, &["CONFIG", "SET", "dbfilename", "x.rdb"]).await;
    assert_eq!(
        err,
        "ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config"
    );
    let err = common::err_line(
        &mut con,
        &["CONFIG", "SET", "enable-protected-configs", "yes"],
    )
    .await;
    assert_eq!(
        err,
        "ERR CONFIG SET failed (possibly related to argument 'enable-protected-configs') - can't set immutable config"
    );
    // `yes` and `local` let a loopback client.
    for allowed in ["yes", "local"] {
        let server = Server::builder()
            .option("enable-protected-configs", allowed)
            .unwrap()
            .start()
            .await
            .unwrap();
        let mut con = common::connect(&server).await;
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("dbfilename")
            .arg("other.rdb")
            .query_async(&mut con)
            .await
            .unwrap();
        let got: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dbfilename")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(got, ["dbfilename", "other.rdb"], "{allowed}");
    }
    // `local` refuses a client from the machine's outside address.
    let Some(outside) = outside_address() else {
        return;
    };
    let server = Server::builder()
        .bind("0.0.0.0")
        .option("enable-protected-configs", "local")
        .unwrap()
        .option("protected-mode", "no")
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut far = tokio::net::TcpStream::connect((outside, server.addr().port()))
        .await
        .unwrap();
    common::send(&mut far, &["CONFIG SET dbfilename far.rdb"]).await;
    common::expect_reply(
        &mut far,
        "-ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config\r\n",
    )
    .await;
}

/// Connects twice with one client configuration (which keeps sessions) and
/// tells whether the second handshake resumed the first's session.
async fn second_handshake_resumes(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> bool {
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut kind = None;
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        // TLS 1.3 sends its session tickets after the handshake: a reply
        // read means they have arrived.
        tls.write_all(b"PING\r\n").await.unwrap();
        let mut buf = [0u8; 7];
        tls.read_exact(&mut buf).await.unwrap();
        kind = tls.get_ref().1.handshake_kind();
    }
    kind == Some(rustls::HandshakeKind::Resumed)
}

#[tokio::test]
async fn tls_session_caching_lets_clients_resume_until_turned_off() {
    let pki = make_pki("resume");
    let server = tls_server(&pki, "no", true).await;
    let addr = server.tls_addr().unwrap();
    assert!(second_handshake_resumes(addr, client_config(&pki.ca, None)).await);
    let mut admin = common::connect(&server).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-session-caching")
        .arg("no")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(!second_handshake_resumes(addr, client_config(&pki.ca, None)).await);
    // What latchkey does not do is refused, not accepted and ignored.
    for (name, value) in [
        ("tls-session-cache-timeout", "60"),
        ("tls-replication", "yes"),
        ("tls-cluster", "yes"),
        ("tls-client-cert-file", "/tmp/x.crt"),
        ("tls-dh-params-file", "/tmp/dh.pem"),
    ] {
        let err = common::err_line(&mut admin, &["CONFIG", "SET", name, value]).await;
        assert!(
            err.starts_with(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - latchkey"
            )),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn tls_ca_cert_dir_trusts_the_certificates_in_it() {
    let pki = make_pki("ca-dir");
    let cas = pki.dir.join("cas");
    std::fs::create_dir_all(&cas).unwrap();
    std::fs::copy(&pki.ca, cas.join("ca.pem")).unwrap();
    std::fs::write(cas.join("README"), "not a certificate").unwrap();
    let server = Server::builder()
        .option("tls-port", &free_port().to_string())
        .unwrap()
        .option("tls-cert-file", s(&pki.cert))
        .unwrap()
        .option("tls-key-file", s(&pki.key))
        .unwrap()
        .option("tls-ca-cert-dir", s(&cas))
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = server.tls_addr().unwrap();
    let with = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    assert_eq!(tls_ping(addr, with).await, "+PONG\r\n");
    let other = make_pki("ca-dir-other");
    let stranger = client_config(&pki.ca, Some((&other.client_cert, &other.client_key)));
    assert!(!tls_ping(addr, stranger).await.contains("PONG"));
}

#[tokio::test]
async fn unfinished_tls_handshakes_count_towards_maxclients() {
    let pki = make_pki("maxclients");
    let server = Server::builder()
        .option("tls-port", &free_port().to_string())
        .unwrap()
        .option("tls-cert-file", s(&pki.cert))
        .unwrap()
        .option("tls-key-file", s(&pki.key))
        .unwrap()
        .option("tls-auth-clients", "no")
        .unwrap()
        .option("maxclients", "2")
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = server.tls_addr().unwrap();
    let config = client_config(&pki.ca, None);
    // A connection that never starts its handshake holds one place.
    let stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut first = connector.connect(name, tcp).await.unwrap();
    first.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    let refused = tls_ping(addr, config.clone()).await;
    assert!(!refused.contains("PONG"), "{refused}");
    // Once the stalled connection goes, its place is free again.
    drop(stalled);
    let mut got = String::new();
    for _ in 0..50 {
        got = tls_ping(addr, config.clone()).await;
        if got == "+PONG\r\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, "+PONG\r\n");
}

#[tokio::test]
async fn the_embedding_builder_serves_tls_on_a_free_port() {
    let pki = make_pki("embed");
    let server = Server::builder()
        .tls(&pki.cert, &pki.key)
        .option("tls-ca-cert-file", s(&pki.ca))
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = server.tls_addr().expect("a TLS listener");
    assert_ne!(addr.port(), 0);
    assert_ne!(server.addr().port(), 0, "the plain port too");
    let with = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    assert_eq!(tls_ping(addr, with).await, "+PONG\r\n");
    // CONFIG GET reports the port bound, and a CONFIG SET re-reads the files.
    let mut con = common::connect(&server).await;
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("tls-port")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, ["tls-port".to_string(), addr.port().to_string()]);
    let err = common::err_line(&mut con, &["CONFIG", "SET", "tls-key-file", "/nonexistent"]).await;
    assert!(err.contains("Unable to update TLS configuration"), "{err}");
    // Without a CA, client certificates cannot be checked: refused at start.
    let err = Server::builder()
        .tls(&pki.cert, &pki.key)
        .start()
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("tls-ca-cert-file"), "{err}");
}

/// The protocol version and suite a handshake with `config` settles on.
async fn negotiated(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> (rustls::ProtocolVersion, rustls::CipherSuite) {
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let conn = tls.get_ref().1;
    (
        conn.protocol_version().unwrap(),
        conn.negotiated_cipher_suite().unwrap().suite(),
    )
}

#[tokio::test]
async fn protocols_suites_and_server_preference_are_applied() {
    use rustls::{CipherSuite as Suite, ProtocolVersion as Version};
    let pki = make_pki("suites");
    let server = Server::builder()
        .tls(&pki.cert, &pki.key)
        .option("tls-auth-clients", "no")
        .unwrap()
        .option(
            "tls-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
        )
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = server.tls_addr().unwrap();
    // rustls's client lists AES-256, AES-128, then ChaCha20: by default the
    // client's order decides among the suites the server allows.
    let config = client_config(&pki.ca, None);
    assert_eq!(
        negotiated(addr, config.clone()).await,
        (Version::TLSv1_3, Suite::TLS13_AES_128_GCM_SHA256)
    );
    let mut con = common::connect(&server).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-prefer-server-ciphers")
        .arg("yes")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        negotiated(addr, config.clone()).await,
        (Version::TLSv1_3, Suite::TLS13_CHACHA20_POLY1305_SHA256)
    );
    // TLS 1.2 only, with one suite.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-protocols")
        .arg("TLSv1.2")
        .arg("tls-ciphers")
        .arg("ECDHE-ECDSA-AES256-GCM-SHA384")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        negotiated(addr, config).await,
        (
            Version::TLSv1_2,
            Suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        )
    );
}
