//! Secrets of the sinks (webhook URLs, header values, signing keys): `Secret`, a value that
//! prints as `[redacted]`, and `SecretSource`, where one comes from (inline, an environment
//! variable, a file), read the same way by `run`, a reload and `config check`.

use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::Url;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself: call it only where the value is used, never to show it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from: exactly one of the three ways a config entry can give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(Secret<String>),
    Env(String),
    /// Relative paths are relative to the config file.
    File(PathBuf),
}

impl SecretSource {
    /// The one place that enforces "exactly one of": `keys` names the three config keys
    /// (inline, env, file) for the message; `inline` is `None` where inline is not allowed.
    pub fn one_of(
        keys: [&str; 3],
        inline: Option<String>,
        env: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<SecretSource, String> {
        let given = [inline.is_some(), env.is_some(), file.is_some()].iter().filter(|b| **b).count();
        if given != 1 {
            let choices = if keys[0].is_empty() {
                format!("{} or {}", keys[1], keys[2])
            } else {
                format!("{}, {} or {}", keys[0], keys[1], keys[2])
            };
            return Err(format!("give exactly one of {choices}"));
        }
        Ok(match (inline, env, file) {
            (Some(v), _, _) => SecretSource::Inline(Secret::new(v)),
            (_, Some(var), _) => SecretSource::Env(var),
            (_, _, Some(path)) => SecretSource::File(path),
            _ => unreachable!("exactly one is given"),
        })
    }

    /// How the source reads in a default sink name and in messages; an inline value by a
    /// short hash only.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Inline(v) => {
                use sha2::{Digest, Sha256};
                let digest = Sha256::digest(v.expose().as_bytes());
                format!("url:{}", digest[..4].iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
            SecretSource::Env(var) => format!("env:{var}"),
            SecretSource::File(path) => format!("file:{}", path.display()),
        }
    }

    /// The value, trimmed. Messages name the variable or the file, never the value.
    pub fn read(&self, base: &Path) -> Result<Secret<String>, String> {
        let raw = match self {
            SecretSource::Inline(v) => v.expose().clone(),
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("the environment variable {var} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!("the environment variable {var} is not valid UTF-8"))
                }
            },
            SecretSource::File(file) => {
                let path = if file.is_relative() { base.join(file) } else { file.clone() };
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
        };
        let value = raw.trim().to_string();
        if value.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret::new(value))
    }
}

/// An http(s) URL with a host; the message never shows the value.
pub fn parse_url(raw: &Secret<String>) -> Result<Secret<Url>, String> {
    let url = Url::parse(raw.expose()).map_err(|e| format!("the webhook URL is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("the webhook URL must be an http:// or https:// URL with a host".into());
    }
    Ok(Secret::new(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_redacted_in_debug_and_display() {
        let s = Secret::new("https://hooks.slack.com/services/T0/B0/XYZ".to_string());
        for shown in [format!("{s}"), format!("{s:?}"), format!("{:?}", Some(&s)), format!("{s:#?}")] {
            assert_eq!(shown.replace("Some(", "").replace(')', "").trim(), "[redacted]");
        }
        assert_eq!(s.expose(), "https://hooks.slack.com/services/T0/B0/XYZ");
    }

    const KEYS: [&str; 3] = ["url", "url_env", "url_file"];

    #[test]
    fn exactly_one_source_is_accepted() {
        let s = |v: &str| Some(v.to_string());
        let p = |v: &str| Some(PathBuf::from(v));
        assert!(matches!(SecretSource::one_of(KEYS, s("u"), None, None), Ok(SecretSource::Inline(_))));
        assert_eq!(SecretSource::one_of(KEYS, None, s("V"), None), Ok(SecretSource::Env("V".into())));
        assert_eq!(SecretSource::one_of(KEYS, None, None, p("f")), Ok(SecretSource::File("f".into())));
        for (inline, env, file) in [(None, None, None), (s("u"), s("V"), None), (None, s("V"), p("f"))] {
            let err = SecretSource::one_of(KEYS, inline, env, file).unwrap_err();
            assert_eq!(err, "give exactly one of url, url_env or url_file");
        }
        let err = SecretSource::one_of(["", "webhook_url_env", "webhook_url_file"], None, None, None).unwrap_err();
        assert_eq!(err, "give exactly one of webhook_url_env or webhook_url_file");
    }

    #[test]
    fn reading_names_the_variable_or_file_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url"), "https://hooks.example.com/s3cret\n").unwrap();
        let file = SecretSource::File("url".into());
        assert_eq!(file.read(dir.path()).unwrap().expose(), "https://hooks.example.com/s3cret");
        let missing = SecretSource::File("absent".into()).read(dir.path()).unwrap_err();
        assert!(missing.starts_with(&format!("cannot read {}", dir.path().join("absent").display())), "{missing}");
        let unset = SecretSource::Env("SGDRIFT_TEST_SURELY_UNSET".into()).read(dir.path()).unwrap_err();
        assert_eq!(unset, "the environment variable SGDRIFT_TEST_SURELY_UNSET is not set");
        let inline = SecretSource::Inline(Secret::new("https://hooks.example.com/s3cret".into()));
        assert!(!inline.describe().contains("s3cret"));
        assert_eq!(inline.describe().len(), "url:".len() + 8);
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_without_being_shown() {
        for raw in
            ["ftp://hooks.example.com/s3cret", "not a url s3cret", "mailto:s3cret@example.com", "https://[s3cret"]
        {
            let err = parse_url(&Secret::new(raw.to_string())).unwrap_err();
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}
