//! Optional TLS and basic auth for the HTTP server, the way the Prometheus exporter-toolkit's web
//! config does them: a PEM certificate chain and key (re-read when the files change, so a
//! cert-manager renewal needs no restart), and users with bcrypt hashes (`htpasswd -B` lines).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::{header, HeaderMap};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// What is wrong with a TLS or users file; the message names the file and what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SecurityError(pub String);

/// What the server enforces beyond its limits.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl Security {
    /// From `[server]`'s files; `None` paths leave that part off. Reads and checks every file
    /// now, so `config check` and the start fail on a bad one, never the first client.
    pub fn load(tls: Option<(&Path, &Path)>, users: Option<&Path>) -> Result<Security, SecurityError> {
        let tls = tls.map(|(cert, key)| tls_acceptor(cert, key)).transpose()?;
        let auth = users.map(BasicAuth::load).transpose()?.map(Arc::new);
        Ok(Security { tls, auth })
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, SecurityError> {
    let resolver = ReloadingCert::new(cert.to_path_buf(), key.to_path_buf())?;
    // Both ring and aws-lc-rs are compiled in (the AWS SDK brings the latter): name the provider
    // rather than rely on a process-wide default.
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The server's certificate, re-read when the modification time of either file changes; a
/// renewal that cannot be read keeps the last good pair (and says so in the log).
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl ReloadingCert {
    fn new(cert: PathBuf, key: PathBuf) -> Result<Self, SecurityError> {
        let stamps = (modified(&cert), modified(&key));
        let loaded = load_pair(&cert, &key)?;
        Ok(ReloadingCert { cert, key, current: Mutex::new((stamps.0, stamps.1, loaded)) })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let stamps = (modified(&self.cert), modified(&self.key));
        if (stamps.0, stamps.1) != (current.0, current.1) {
            match load_pair(&self.cert, &self.key) {
                Ok(fresh) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    *current = (stamps.0, stamps.1, fresh);
                }
                // Half-written during a renewal, most likely: the next handshake tries again.
                Err(e) => tracing::warn!(error = %e, "cannot reload the TLS certificate; serving the previous one"),
            }
        }
        Some(Arc::clone(&current.2))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, SecurityError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).and_then(|certs| certs.collect::<Result<_, _>>()).map_err(|e| {
            SecurityError(format!("server.tls_cert_file {}: {e}: expected a PEM certificate chain", cert.display()))
        })?;
    if chain.is_empty() {
        return Err(SecurityError(format!("server.tls_cert_file {}: no PEM certificate in it", cert.display())));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        SecurityError(format!(
            "server.tls_key_file {}: {e}: expected a PEM private key (PKCS#8, PKCS#1 or SEC1)",
            key.display()
        ))
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|e| SecurityError(format!("server.tls_key_file {}: {e}", key.display())))?;
    let pair = CertifiedKey::new(chain, signer);
    pair.keys_match().map_err(|e| {
        SecurityError(format!(
            "server.tls_cert_file {} and server.tls_key_file {} do not belong together: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    Ok(Arc::new(pair))
}

/// Users and their bcrypt hashes. A successful check is remembered (by a SHA-256 of the
/// credentials) so a scrape every few seconds does not pay bcrypt's cost each time.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    verifying: tokio::sync::Semaphore,
}

/// bcrypt checks running at once; the rest wait their turn.
const MAX_VERIFYING: usize = 2;

/// Paths a probe reaches without credentials: liveness and readiness say nothing about the
/// clusters, and kubelet probes carry no password.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];
/// Remembered successes at most; past it the memory starts over (a client guessing passwords
/// cannot grow it: only successes are kept).
const MAX_REMEMBERED: usize = 1024;

impl BasicAuth {
    /// Reads `user:hash` lines (`htpasswd -B -n user`); `#` comments and blank lines are skipped.
    pub fn load(path: &Path) -> Result<BasicAuth, SecurityError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecurityError(format!("server.basic_auth_users_file {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|(line, what)| {
            SecurityError(format!("server.basic_auth_users_file {}:{line}: {what}", path.display()))
        })
    }

    fn parse(text: &str) -> Result<BasicAuth, (usize, String)> {
        let mut users = BTreeMap::new();
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err((n, "expected `user:bcrypt-hash`, as `htpasswd -B -n user` prints".into()));
            };
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) || hash.len() != 60 {
                return Err((n, format!("the hash of `{user}` is not bcrypt ($2y$…, 60 characters): make it with `htpasswd -B -n {user}`")));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err((n, format!("user `{user}` is listed twice")));
            }
        }
        if users.is_empty() {
            return Err((1, "no user in it: an empty file would lock everyone out".into()));
        }
        Ok(BasicAuth {
            users,
            verified: Mutex::new(HashSet::new()),
            verifying: tokio::sync::Semaphore::new(MAX_VERIFYING),
        })
    }

    /// Whether a request for `path` with `headers` may proceed. bcrypt costs tens of
    /// milliseconds of CPU, so a check not remembered runs on the blocking pool, at most
    /// [`MAX_VERIFYING`] at a time: clients guessing passwords wait for each other and never
    /// hold the workers that answer `/metrics`.
    pub async fn allows(self: &Arc<Self>, path: &str, headers: &HeaderMap) -> bool {
        if OPEN_PATHS.contains(&path) {
            return true;
        }
        let Some((user, password)) = credentials(headers) else { return false };
        let Some(hash) = self.users.get(&user).cloned() else { return false };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if self.verified.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return true;
        }
        let Ok(_permit) = self.verifying.acquire().await else { return false };
        let verified = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false));
        if !verified.await.unwrap_or(false) {
            return false;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= MAX_REMEMBERED {
            verified.clear();
        }
        verified.insert(key);
        true
    }
}

/// `Authorization: Basic base64(user:password)`.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        use base64::Engine;
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(header::AUTHORIZATION, format!("Basic {token}").parse().unwrap());
        h
    }

    #[tokio::test]
    async fn only_a_listed_user_with_the_right_password_passes_and_probes_need_none() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = Arc::new(BasicAuth::parse(&format!("# scrapers\nprometheus:{hash}\n\n")).unwrap());
        // (path, headers, allowed)
        let cases = [
            ("/metrics", basic("prometheus", "s3cret"), true),
            ("/metrics", basic("prometheus", "s3cret"), true), // remembered
            ("/metrics", basic("prometheus", "wrong"), false),
            ("/metrics", basic("grafana", "s3cret"), false),
            ("/metrics", HeaderMap::new(), false),
            ("/", basic("prometheus", "s3cret"), true),
            ("/api/v1/report", HeaderMap::new(), false),
            ("/healthz", HeaderMap::new(), true),
            ("/readyz", HeaderMap::new(), true),
        ];
        for (path, headers, want) in cases {
            assert_eq!(auth.allows(path, &headers).await, want, "{path} {headers:?}");
        }
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(!auth.allows("/metrics", &bearer).await);
    }

    #[test]
    fn a_users_file_names_the_line_that_is_wrong() {
        let hash = bcrypt::hash("x", 4).unwrap();
        // (file, line, words)
        let cases = [
            ("prometheus\n".to_string(), 1, "user:bcrypt-hash"),
            ("# c\nprometheus:{SHA}abc\n".to_string(), 2, "not bcrypt"),
            (format!("a:{hash}\na:{hash}\n"), 2, "listed twice"),
            ("# nobody\n".to_string(), 1, "no user"),
        ];
        for (text, line, words) in cases {
            let (at, what) = BasicAuth::parse(&text).unwrap_err();
            assert_eq!(at, line, "{text}");
            assert!(what.contains(words), "{what}");
        }
    }

    #[test]
    fn a_certificate_and_a_key_that_do_not_belong_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, one.cert.pem()).unwrap();
        std::fs::write(&key, one.key_pair.serialize_pem()).unwrap();
        assert!(load_pair(&cert, &key).is_ok());
        std::fs::write(&key, two.key_pair.serialize_pem()).unwrap();
        let err = load_pair(&cert, &key).unwrap_err().0;
        assert!(err.contains("do not belong together"), "{err}");
        std::fs::write(&cert, "not a certificate").unwrap();
        let err = load_pair(&cert, &key).unwrap_err().0;
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
