//! TLS for the probe, as `check_curl` does it: the certificate is checked only with
//! `--verify-cert`, then against the host's system trust store (plus `--ca-cert`), and every
//! failure is told in words.
//!
//! ureq's own rustls connector hides the peer's certificate and returns rustls' error as
//! debug text inside an io error (`invalid peer certificate: Other(OtherError(...))`). So
//! the probe has its own connector ([`TlsConnector`], ureq's documented `unversioned`
//! transport API, modelled on ureq's): the same rustls with ring (static binaries, no
//! OpenSSL), a verifier that remembers the certificate the server presented, and
//! [`TlsFailure`], which turns rustls' error and that certificate into one plain sentence.
//!
//! The server name (SNI, and the name verified) is the host of the URL the request is for;
//! with `--host NAME` the probe asks for `https://NAME:PORT/...` and its resolver sends the
//! connection to the URL's own address (see `probe.rs`).

use std::fmt;
use std::io::{self, Read, Write};

use procguard_common::civil::{civil_from_days, days_from_civil};
use procguard_common::files::Follow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct,
    RootCertStore, SignatureScheme, StreamOwned,
};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// The most a `--ca-cert` file may hold: a bundle of a few hundred certificates.
const CA_FILE_MAX: u64 = 4 << 20;

/// The TLS options of the probe.
#[allow(clippy::doc_markdown)] // clap help text, printed as written
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Verify the server's certificate (chain, dates, name) against the system trust store
    /// and --ca-cert; without it any certificate is accepted, as check_curl does
    #[arg(long)]
    pub verify_cert: bool,

    /// With --verify-cert, also trust the CA certificate(s) in this PEM file
    #[arg(long, value_name = "FILE", requires = "verify_cert")]
    pub ca_cert: Option<PathBuf>,

    /// Host header and TLS server name (SNI) of the probe; the connection still goes to the
    /// URL's address (a virtual host behind a local proxy)
    #[arg(long, value_name = "NAME", value_parser = parse_host)]
    pub host: Option<String>,
}

/// `--host`: a DNS name or an IP address, nothing that would change the URL's meaning.
fn parse_host(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "{text:?} is not a host name (letters, digits, '.', '-', '_'; an IP address)"
        ))
    }
}

/// The rustls client configuration for `args`, plus the slot where the verifier leaves the
/// certificate the server presented.
#[derive(Debug, Clone)]
pub struct Setup {
    config: Arc<ClientConfig>,
    seen: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl Setup {
    /// Builds it.
    ///
    /// # Errors
    ///
    /// A sentence for an UNKNOWN (the check could not be set up): an unreadable or empty
    /// `--ca-cert`, an empty trust store.
    pub fn new(args: &TlsArgs) -> Result<Setup, String> {
        let provider = Arc::new(ring::default_provider());
        let seen = Arc::new(Mutex::new(None));
        let mut extra = Vec::new();
        let verifier = if args.verify_cert {
            let roots = trust_store(args.ca_cert.as_deref(), &mut extra)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(roots.into(), provider.clone())
                    .build()
                    .map_err(|_| "no usable certificate in the trust store".to_string())?;
            Some(webpki)
        } else {
            None
        };
        let extra = Arc::new(extra);
        let recorder = Recorder {
            inner: verifier,
            seen: seen.clone(),
            pinned: extra.clone(),
            provider: provider.clone(),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| "TLS set-up failed: no protocol version".to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(recorder))
            .with_no_client_auth();
        Ok(Setup {
            config: Arc::new(config),
            seen,
        })
    }

    /// The certificate the server presented in the last handshake, if one got that far.
    fn peer(&self) -> Option<CertificateDer<'static>> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The system trust store (the files `update-ca-certificates` and its kin maintain, or
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`), plus the certificates in `ca_file`.
fn trust_store(
    ca_file: Option<&Path>,
    extra: &mut Vec<CertificateDer<'static>>,
) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    let (system_added, _) = roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        let pem = read_ca_file(path)?;
        let certs: Vec<CertificateDer<'static>> =
            rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
        extra.extend(certs.iter().cloned());
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "--ca-cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                path.display()
            ));
        }
    } else if system_added == 0 {
        return Err(
            "--verify-cert: the system trust store is empty or unreadable (install ca-certificates, or give --ca-cert FILE)"
                .to_string(),
        );
    }
    Ok(roots)
}

/// Reads `--ca-cert`: a regular file of bounded size (not a FIFO or a device that would
/// block or never end).
fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    procguard_common::files::read_regular(path, CA_FILE_MAX, Follow::Always)
        .map_err(|e| format!("--ca-cert: {e}"))
}

/// A verifier that remembers the server's certificate, then verifies it with webpki when
/// asked to (`inner`), else accepts it.
///
/// A certificate given itself with `--ca-cert` is trusted as itself once its dates and
/// names fit, as OpenSSL (`check_curl`) does: webpki refuses a trust anchor as the server's
/// certificate when it says CA:TRUE, and `openssl req -x509` certificates all do.
#[derive(Debug)]
struct Recorder {
    inner: Option<Arc<WebPkiServerVerifier>>,
    seen: Arc<Mutex<Option<CertificateDer<'static>>>>,
    pinned: Arc<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl Recorder {
    /// Verifies a `--ca-cert` certificate presented as the server's: dates, then name.
    fn pinned(
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let bad = |e: CertificateError| Err(rustls::Error::InvalidCertificate(e));
        let Some((not_before, not_after)) = validity(end_entity) else {
            return bad(CertificateError::BadEncoding);
        };
        let at = |secs: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        if now.as_secs() > not_after {
            return bad(CertificateError::ExpiredContext {
                time: now,
                not_after: at(not_after),
            });
        }
        if now.as_secs() < not_before {
            return bad(CertificateError::NotValidYetContext {
                time: now,
                not_before: at(not_before),
            });
        }
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if let Err(e) = cert.verify_is_valid_for_subject_name(server_name) {
            let presented = match e {
                webpki::Error::CertNotValidForName(cx) => cx.presented,
                _ => Vec::new(),
            };
            return bad(CertificateError::NotValidForNameContext {
                expected: server_name.to_owned(),
                presented,
            });
        }
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(end_entity.clone().into_owned());
        let Some(webpki) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(_) if self.pinned.iter().any(|p| p == end_entity) => {
                Recorder::pinned(end_entity, server_name, now)
            }
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why the TLS part of the probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The handshake did not complete (alert, no common version or cipher, not TLS at all).
    Handshake(String),
    /// The certificate's notAfter has passed.
    Expired {
        /// notAfter, seconds since the epoch.
        not_after: u64,
        /// The time of the check.
        now: u64,
    },
    /// The certificate's notBefore is still to come.
    NotYetValid {
        /// notBefore, seconds since the epoch.
        not_before: u64,
        /// The time of the check.
        now: u64,
    },
    /// The certificate is not for the name asked for.
    NameMismatch {
        /// The name verified (the URL's host, or --host).
        expected: String,
        /// The names in the certificate (subjectAltName).
        presented: Vec<String>,
    },
    /// Signed by a CA that is not trusted.
    UnknownIssuer {
        /// The issuer's common name, when the certificate could be read.
        issuer: Option<String>,
    },
    /// A self-signed certificate that is not itself trusted.
    SelfSigned {
        /// Its common name, when it has one.
        subject: Option<String>,
    },
    /// Any other certificate problem, in words.
    Certificate(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Handshake(why) => write!(f, "TLS handshake failed: {why}"),
            TlsFailure::Expired { not_after, now } => write!(
                f,
                "TLS certificate expired on {} ({} ago)",
                utc(*not_after),
                age(now.saturating_sub(*not_after))
            ),
            TlsFailure::NotYetValid { not_before, now } => write!(
                f,
                "TLS certificate not valid yet: valid from {} (in {})",
                utc(*not_before),
                age(not_before.saturating_sub(*now))
            ),
            TlsFailure::NameMismatch {
                expected,
                presented,
            } => {
                if presented.is_empty() {
                    write!(f, "TLS certificate name mismatch: it names no host (no subjectAltName), not {expected}")
                } else {
                    write!(
                        f,
                        "TLS certificate name mismatch: it is for {}, not {expected}",
                        names_list(presented)
                    )
                }
            }
            TlsFailure::UnknownIssuer { issuer } => {
                write!(f, "TLS certificate issuer unknown: ")?;
                if let Some(cn) = issuer {
                    write!(f, "signed by \"{cn}\", ")?;
                }
                write!(f, "not in the system trust store or --ca-cert")
            }
            TlsFailure::SelfSigned { subject } => {
                write!(f, "TLS certificate is self-signed")?;
                if let Some(cn) = subject {
                    write!(f, " (\"{cn}\")")?;
                }
                write!(
                    f,
                    " and not trusted: give it as --ca-cert, or drop --verify-cert"
                )
            }
            TlsFailure::Certificate(why) => write!(f, "TLS certificate rejected: {why}"),
        }
    }
}

/// `a, b, c and 4 more`.
fn names_list(names: &[String]) -> String {
    const SHOWN: usize = 4;
    let text = names
        .iter()
        .take(SHOWN)
        .map(|n| clean(n))
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{text} and {more} more"),
        _ => text,
    }
}

/// A name from a certificate, safe to print: printable characters only, at most 64.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect()
}

impl TlsFailure {
    /// The class of a rustls error, given what is known of the certificate.
    #[must_use]
    pub fn from_rustls(e: &rustls::Error, peer: Option<&CertificateDer<'_>>) -> TlsFailure {
        match e {
            rustls::Error::InvalidCertificate(c) => certificate(c, peer),
            other => TlsFailure::Handshake(handshake_words(other)),
        }
    }

    /// From an io error out of the handshake, if it carries a rustls error.
    fn from_io(e: &io::Error, peer: Option<&CertificateDer<'_>>) -> Option<TlsFailure> {
        let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(TlsFailure::from_rustls(inner, peer))
    }
}

/// A certificate error in words. A certificate whose issuer is its subject is "self-signed"
/// whatever webpki found first (`UnknownIssuer`, or `CaUsedAsEndEntity` for the CA:TRUE
/// certificates `openssl req -x509` makes).
fn certificate(c: &CertificateError, peer: Option<&CertificateDer<'_>>) -> TlsFailure {
    let parsed = peer.and_then(|d| webpki::EndEntityCert::try_from(d).ok());
    let self_signed = parsed.as_ref().is_some_and(|p| p.issuer() == p.subject());
    let subject = parsed.as_ref().and_then(|p| common_name(p.subject()));
    let issuer = parsed.as_ref().and_then(|p| common_name(p.issuer()));
    let webpki_error = match c {
        CertificateError::Other(o) => o.0.downcast_ref::<webpki::Error>(),
        _ => None,
    };
    let ca_as_leaf = matches!(webpki_error, Some(webpki::Error::CaUsedAsEndEntity));
    let chain_problem = ca_as_leaf
        || matches!(
            c,
            CertificateError::UnknownIssuer | CertificateError::BadSignature
        );
    if self_signed && chain_problem {
        return TlsFailure::SelfSigned { subject };
    }
    match c {
        CertificateError::Expired => TlsFailure::Certificate("expired".to_string()),
        CertificateError::ExpiredContext { time, not_after } => TlsFailure::Expired {
            not_after: not_after.as_secs(),
            now: time.as_secs(),
        },
        CertificateError::NotValidYet => TlsFailure::Certificate("not valid yet".to_string()),
        CertificateError::NotValidYetContext { time, not_before } => TlsFailure::NotYetValid {
            not_before: not_before.as_secs(),
            now: time.as_secs(),
        },
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => TlsFailure::NameMismatch {
            expected: server_name_text(expected),
            presented: presented.iter().filter_map(|p| presented_name(p)).collect(),
        },
        CertificateError::NotValidForName => TlsFailure::NameMismatch {
            expected: String::new(),
            presented: parsed
                .as_ref()
                .map(|p| p.valid_dns_names().map(str::to_string).collect())
                .unwrap_or_default(),
        },
        _ if ca_as_leaf => TlsFailure::Certificate(
            "it is a CA certificate, not a server certificate (basicConstraints CA:TRUE)"
                .to_string(),
        ),
        _ if chain_problem => TlsFailure::UnknownIssuer { issuer },
        CertificateError::Revoked => TlsFailure::Certificate("revoked".to_string()),
        CertificateError::BadEncoding => TlsFailure::Certificate("malformed".to_string()),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            TlsFailure::Certificate("not valid for a TLS server (extended key usage)".to_string())
        }
        CertificateError::UnhandledCriticalExtension => TlsFailure::Certificate(
            "it has a critical extension that is not understood".to_string(),
        ),
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            TlsFailure::Certificate("signed with an unsupported algorithm".to_string())
        }
        _ => TlsFailure::Certificate("it does not verify".to_string()),
    }
}

/// A name as webpki lists it (`DnsName("a.example")`, `IpAddress(10.0.0.1)`), plain; other
/// kinds of names (URIs, directory names) are not host names and are left out.
fn presented_name(debug: &str) -> Option<String> {
    let name = debug
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            debug
                .strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        })?;
    Some(name.to_string())
}

/// (notBefore, notAfter) of a DER certificate, in seconds since the epoch.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    // [0] version (optional), serialNumber, signature, issuer, validity.
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2;
    }
    let (0x30, validity, _) = tlv(rest)? else {
        return None;
    };
    let (t1, v1, rest) = tlv(validity)?;
    let (t2, v2, _) = tlv(rest)?;
    Some((der_time(t1, v1)?, der_time(t2, v2)?))
}

/// A `UTCTime` (`YYMMDDHHMMSSZ`, tag 0x17) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`, tag 0x18),
/// as certificates must encode them (RFC 5280 4.1.2.5), in seconds since the epoch.
fn der_time(tag: u8, v: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let days = days_from_civil(year, n(0)?, n(2)?);
    let secs = days * 86_400 + n(4)? * 3600 + n(6)? * 60 + n(8)?;
    u64::try_from(secs).ok()
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => "the requested name".to_string(),
    }
}

/// Words for a handshake that failed for another reason than the certificate.
fn handshake_words(e: &rustls::Error) -> String {
    match e {
        rustls::Error::AlertReceived(a) => match a {
            AlertDescription::HandshakeFailure => {
                "the server refused it (no TLS version or cipher in common?)".to_string()
            }
            AlertDescription::ProtocolVersion => "no TLS version in common".to_string(),
            AlertDescription::UnrecognisedName => {
                "the server does not serve this name (SNI; see --host)".to_string()
            }
            AlertDescription::CertificateRequired => {
                "the server requires a client certificate".to_string()
            }
            other => format!(
                "the server sent the alert \"{}\"",
                words(&format!("{other:?}"))
            ),
        },
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            "the server did not answer in TLS (plain HTTP on this port?)".to_string()
        }
        rustls::Error::NoCertificatesPresented => "the server sent no certificate".to_string(),
        rustls::Error::PeerIncompatible(why) => {
            format!("the server is incompatible: {}", words(&format!("{why:?}")))
        }
        rustls::Error::PeerMisbehaved(why) => {
            format!(
                "the server broke the protocol: {}",
                words(&format!("{why:?}"))
            )
        }
        rustls::Error::DecryptError => "a message could not be decrypted".to_string(),
        _ => "TLS protocol error".to_string(),
    }
}

/// `BadRecordMac` -> `bad record mac`; anything past a bracket (a payload) is dropped.
fn words(debug: &str) -> String {
    let name = debug.split(['(', '{', ' ']).next().unwrap_or(debug);
    let mut out = String::new();
    for c in name.chars().filter(char::is_ascii_alphanumeric) {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The commonName (else organizationName) of a DER Name, given with or without its outer
/// SEQUENCE. Only what is needed for a message: a malformed name gives `None`.
fn common_name(name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    let mut rdns = name;
    if let Some((0x30, inner, rest)) = tlv(name) {
        if rest.is_empty() {
            rdns = inner;
        }
    }
    let mut found: [Option<String>; 2] = [None, None];
    while let Some((0x31, set, rest)) = tlv(rdns) {
        rdns = rest;
        let Some((0x30, atv, _)) = tlv(set) else {
            return None;
        };
        let (0x06, oid, value) = tlv(atv)? else {
            return None;
        };
        let (_, text, _) = tlv(value)?;
        let slot = if oid == CN {
            0
        } else if oid == O {
            1
        } else {
            continue;
        };
        found[slot] = Some(clean(&String::from_utf8_lossy(text)));
    }
    let [cn, o] = found;
    cn.or(o)
}

/// One DER tag-length-value: (tag, value, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        b = &b[n..];
        len
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// `2026-11-28 00:00 UTC`.
fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX / 2));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// `3 days`, `5 hours`, `12 minutes`, `40 seconds`.
fn age(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 2 * 3600 => (s / 3600, "hours"),
        s if s >= 120 => (s / 60, "minutes"),
        s => (s, "seconds"),
    };
    format!("{n} {unit}")
}

/// The TLS layer of the probe's connector chain: wraps the connection in TLS for https.
/// A failed handshake is left in `failure` in words; ureq gets an io error back.
#[derive(Debug)]
pub struct TlsConnector {
    /// The configuration and the certificate slot.
    pub setup: Setup,
    /// The failure of the last handshake, if it failed for a TLS reason.
    pub failure: Arc<Mutex<Option<TlsFailure>>>,
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            self.fail(TlsFailure::Handshake(format!(
                "\"{}\" is not a valid TLS server name",
                clean(host)
            )))
        })?;
        let mut conn = ClientConnection::new(self.setup.config.clone(), name)
            .map_err(|e| self.fail(TlsFailure::from_rustls(&e, None)))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        if let Err(e) = conn.complete_io(&mut sock) {
            let peer = self.setup.peer();
            if let Some(f) = TlsFailure::from_io(&e, peer.as_ref()) {
                return Err(self.fail(f));
            }
            // Timeouts, resets and closes keep their own classes (the caller knows whether
            // bytes came), but a close is said to have ended the handshake.
            if e.kind() == io::ErrorKind::UnexpectedEof {
                return Err(self.fail(TlsFailure::Handshake(
                    "the server closed the connection".to_string(),
                )));
            }
            return Err(ureq::Error::from(e));
        }
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, sock),
            failure: self.failure.clone(),
        })))
    }
}

impl TlsConnector {
    /// Records `f` and gives the error ureq passes back up.
    fn fail(&self, f: TlsFailure) -> ureq::Error {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
        ureq::Error::Tls("TLS failed")
    }
}

/// A TLS connection over the chained transport.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    failure: Arc<Mutex<Option<TlsFailure>>>,
}

impl TlsTransport {
    /// An io error of the connection: a TLS one (an alert after the handshake, e.g. a
    /// refused client certificate in TLS 1.3) is recorded in words.
    fn error(&self, e: io::Error) -> ureq::Error {
        match TlsFailure::from_io(&e, None) {
            Some(f) => {
                *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
                ureq::Error::Tls("TLS failed")
            }
            None => ureq::Error::from(e),
        }
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output).map_err(|e| self.error(e))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input).map_err(|e| self.error(e))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ages() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        // date -u -d @1795996800 -> Mon Nov 30 00:00:00 UTC 2026
        assert_eq!(utc(1_795_996_800), "2026-11-30 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3661), "2000-02-29 01:01 UTC");
        assert_eq!(age(3 * 86_400 + 5), "3 days");
        assert_eq!(age(86_400), "24 hours");
        assert_eq!(age(59), "59 seconds");
    }

    #[test]
    fn certificate_times() {
        assert_eq!(der_time(0x17, b"200201000000Z"), Some(1_580_515_200));
        assert_eq!(der_time(0x18, b"20200201000000Z"), Some(1_580_515_200));
        assert_eq!(der_time(0x17, b"991231235959Z"), Some(946_684_799));
        assert_eq!(der_time(0x17, b"2002010000Z"), None);
        assert_eq!(der_time(0x18, b"2020020100000+0"), None);
        for days in [-1, 0, 11_016, 20_422, 47_482] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
    }

    #[test]
    fn names_from_webpki() {
        assert_eq!(
            presented_name("DnsName(\"a.test\")").as_deref(),
            Some("a.test")
        );
        assert_eq!(
            presented_name("IpAddress(10.0.0.1)").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(presented_name("DirectoryName"), None);
    }

    #[test]
    fn alert_words() {
        assert_eq!(words("BadRecordMac"), "bad record mac");
        assert_eq!(words("Unknown(255)"), "unknown");
    }

    #[test]
    fn names_are_cut_and_cleaned() {
        let names: Vec<String> = (1..=6).map(|i| format!("h{i}.example")).collect();
        assert_eq!(
            names_list(&names),
            "h1.example, h2.example, h3.example, h4.example and 2 more"
        );
        assert_eq!(clean("a\u{1b}[31mb"), "a?[31mb");
    }

    #[test]
    fn host_option() {
        assert_eq!(parse_host("App.Example").as_deref(), Ok("app.example"));
        assert!(parse_host("a/b").is_err());
        assert!(parse_host("a b").is_err());
        assert!(parse_host("").is_err());
    }
}
