//! Validates documents against the JSON Schemas published in `docs/schema/`, with Python's
//! `jsonschema` from the test venv; schemas may `$ref` each other by relative `$id`.

use std::io::Write;
use std::path::PathBuf;

const VALIDATE: &str = r#"
import json, pathlib, sys
import jsonschema
from referencing import Registry, Resource
schemas = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("*.schema.json")]
registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
schema = next(s for s in schemas if s["$id"].endswith("/" + sys.argv[2]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
errors = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(json.load(sys.stdin))]
print("\n".join(errors[:20]))
sys.exit(1 if errors else 0)
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The errors of `doc` against `docs/schema/<schema>`; empty when it follows it.
pub fn schema_errors(schema: &str, doc: &serde_json::Value) -> String {
    let python = std::env::var_os("SGDRIFT_PYTHON").map_or_else(|| repo().join(".venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "Python with jsonschema is missing: nothing at {} (set SGDRIFT_PYTHON, or run scripts/setup-test-deps)",
        python.display()
    );
    let mut child = std::process::Command::new(&python)
        .args(["-c", VALIDATE])
        .arg(repo().join("docs/schema"))
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    child.stdin.take().expect("stdin").write_all(doc.to_string().as_bytes()).expect("write the document");
    let out = child.wait_with_output().expect("validator output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => String::new(),
        Some(1) if !text.trim().is_empty() && out.stderr.is_empty() => text,
        _ => panic!("the schema validator itself failed: {text}"),
    }
}

/// Fails the test, naming `what`, unless `doc` follows `docs/schema/<schema>`.
pub fn assert_matches_schema(schema: &str, what: &str, doc: &serde_json::Value) {
    let errors = schema_errors(schema, doc);
    assert!(errors.is_empty(), "{what} does not follow docs/schema/{schema}:\n{errors}");
}
