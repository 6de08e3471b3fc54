//! `Secret`: a value (a webhook URL) that prints as `[redacted]` in Debug and Display, so it
//! cannot leak through a log line, an error or a `{:?}` by accident.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_prints_redacted_in_debug_and_display() {
        let s = Secret::new("https://hooks.slack.com/services/T0/B0/XYZ".to_string());
        for shown in [format!("{s}"), format!("{s:?}"), format!("{:?}", Some(&s)), format!("{s:#?}")] {
            assert_eq!(shown.replace("Some(", "").replace(')', "").trim(), "[redacted]");
        }
        assert_eq!(s.expose(), "https://hooks.slack.com/services/T0/B0/XYZ");
    }
}
