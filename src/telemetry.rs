//! Logging: `tracing-subscriber` with an env filter (`RUST_LOG`, default `info`), text or JSON,
//! always on stderr so stdout stays the report.
//!
//! Field values come from outside (cluster names from a files source, AWS error messages): in
//! text logs every control character in them is escaped, so that a newline cannot start a
//! forged log line and an escape sequence cannot repaint the terminal. Colours are used only
//! when stderr is a terminal (and `NO_COLOR` is unset). JSON logs put the fields at the top level
//! of each object beside `level`, `target` and `message`.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour).fmt_fields(escaped_fields()).try_init(),
        LogFormat::Json => builder.with_ansi(false).json().flatten_event(true).try_init(),
    };
}

/// The text format's fields, `key=value` separated by spaces, the message bare, every control
/// character of a value escaped.
pub fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(|writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
        if field.name() == "message" {
            write!(writer, "{}", Escaped(value))
        } else {
            write!(writer, "{}={}", field.name(), Escaped(value))
        }
    })
    .delimited(" ")
}

/// Formats the inner value (with `Debug`, which is `Display` for `%` fields), escaping control
/// characters as `\n`, `\r`, `\t` or `\u{..}`.
struct Escaped<'a>(&'a dyn fmt::Debug);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = EscapingWriter(f);
        write!(out, "{:?}", self.0)
    }
}

struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if c.is_control() => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false);
        match format {
            LogFormat::Text => tracing::subscriber::with_default(builder.fmt_fields(escaped_fields()).finish(), emit),
            LogFormat::Json => tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), emit),
        }
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    const FORGED: &str = "prod\n2026-11-30T00:00:00Z  INFO sgdrift: all clear\x1b[2J";

    #[test]
    fn a_newline_or_escape_in_a_field_or_message_never_splits_or_repaints_a_text_line() {
        let out = logged(LogFormat::Text, || {
            tracing::warn!(cluster = %FORGED, debug = ?FORGED, "poll of {FORGED} failed");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(out.contains("cluster=prod\\n2026-11-30T00:00:00Z  INFO sgdrift: all clear\\u{1b}[2J"), "{out}");
        assert!(out.contains("poll of prod\\n2026"), "{out}");
    }

    #[test]
    fn json_logs_put_the_fields_beside_the_message() {
        let out = logged(LogFormat::Json, || tracing::info!(cluster = %FORGED, polls = 3, "polled"));
        assert_eq!(out.lines().count(), 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["cluster"], FORGED);
        assert_eq!(line["polls"], 3);
        assert_eq!(line["message"], "polled");
        assert!(line.get("fields").is_none(), "{line}");
    }
}
