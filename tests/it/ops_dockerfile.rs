//! The container image, checked from deploy/Dockerfile itself (no Docker engine in CI): a
//! multi-stage build of a locked release binary, pinned base images, and a final stage that runs
//! as a numeric non-root user on a distroless base with CA certificates and no shell.

use crate::ops_common::read;

/// One instruction: its keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
        out.push(Instruction { keyword: keyword.to_ascii_uppercase(), args: args.trim().to_string() });
        current.clear();
    }
    assert!(current.is_empty(), "deploy/Dockerfile ends inside a continued line");
    out
}

/// The stages, each as its FROM arguments and the instructions after it.
fn stages(instructions: &[Instruction]) -> Vec<(&str, Vec<&Instruction>)> {
    let mut out: Vec<(&str, Vec<&Instruction>)> = Vec::new();
    for i in instructions {
        if i.keyword == "FROM" {
            out.push((i.args.as_str(), Vec::new()));
        } else {
            out.last_mut().expect("deploy/Dockerfile starts with FROM").1.push(i);
        }
    }
    out
}

/// `image[:tag][@digest]` of a FROM line, without `--platform` and `AS name`.
fn image(from: &str) -> &str {
    from.split_whitespace().find(|w| !w.starts_with("--")).expect("FROM names an image")
}

fn dockerfile() -> Vec<Instruction> {
    parse(&read("deploy/Dockerfile"))
}

#[test]
fn the_image_is_built_in_stages_from_pinned_bases() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    assert!(stages.len() >= 2, "deploy/Dockerfile must be multi-stage: build, then a small runtime image");
    for (from, _) in &stages {
        let image = image(from);
        let (name, tag) = match image.split_once('@') {
            Some(_) => continue, // pinned by digest
            None => image.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((image, "")),
        };
        assert!(!tag.is_empty(), "FROM {image}: name a tag or digest, never an implicit latest");
        assert_ne!(tag, "latest", "FROM {name}:latest is not reproducible");
    }
    let (build_from, build) = &stages[0];
    assert!(build_from.to_ascii_lowercase().contains(" as "), "the build stage needs a name for COPY --from");
    let cargo = build
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the build stage runs cargo build");
    for flag in ["--release", "--locked"] {
        assert!(cargo.args.contains(flag), "cargo build needs {flag}: {}", cargo.args);
    }
}

#[test]
fn the_builder_is_at_least_the_crates_minimum_rust() {
    let instructions = dockerfile();
    let builder = image(stages(&instructions)[0].0).to_string();
    let version = builder
        .strip_prefix("rust:")
        .and_then(|t| t.split('-').next())
        .unwrap_or_else(|| panic!("the build stage is `{builder}`, expected rust:<version>-<debian>"));
    let manifest = read("Cargo.toml");
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"'))
        .expect("Cargo.toml sets rust-version");
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().expect("numeric version")).collect() };
    assert!(parse(version) >= parse(msrv), "rust:{version} is older than the crate's rust-version {msrv}");
    // glibc of the build must not be newer than the runtime's: same Debian release on both.
    let runtime = image(stages(&instructions).last().unwrap().0).to_string();
    if runtime.contains("distroless/cc-debian12") {
        assert!(
            builder.ends_with("-bookworm"),
            "a distroless/cc-debian12 runtime needs a bookworm (Debian 12) builder, not {builder}"
        );
    }
}

#[test]
fn the_final_stage_runs_as_a_numeric_non_root_user_without_a_shell() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    let (from, last) = stages.last().unwrap();
    let base = image(from);
    assert!(
        base.starts_with("gcr.io/distroless/"),
        "the runtime base `{base}` should be distroless: CA certificates, no shell, no package manager"
    );
    assert!(!last.iter().any(|i| i.keyword == "RUN"), "the final stage has no shell to RUN anything with");
    let user = last.iter().rfind(|i| i.keyword == "USER").expect("the final stage sets USER");
    let (uid, gid) = user.args.split_once(':').unwrap_or((&user.args, ""));
    let uid: u32 =
        uid.parse().unwrap_or_else(|_| panic!("USER {} must be numeric, so runAsNonRoot can verify it", user.args));
    assert_ne!(uid, 0, "USER must not be root");
    if !gid.is_empty() {
        assert!(gid.parse::<u32>().is_ok_and(|g| g != 0), "USER group {gid} must be numeric and not root");
    }
    for keyword in ["ENTRYPOINT", "CMD"] {
        let i = last.iter().find(|i| i.keyword == keyword).unwrap_or_else(|| panic!("the final stage sets {keyword}"));
        let parsed: Vec<String> = serde_json::from_str(&i.args)
            .unwrap_or_else(|_| panic!("{keyword} must use the exec (JSON array) form: there is no shell"));
        assert!(!parsed.is_empty());
    }
    let entrypoint = last.iter().find(|i| i.keyword == "ENTRYPOINT").unwrap();
    let binary: Vec<String> = serde_json::from_str(&entrypoint.args).unwrap();
    assert!(
        last.iter().any(|i| i.keyword == "COPY" && i.args.contains("--from=") && i.args.ends_with(&binary[0])),
        "the entrypoint {} must be the binary copied from the build stage",
        binary[0]
    );
    assert!(
        last.iter().any(|i| i.keyword == "EXPOSE" && i.args.split_whitespace().any(|p| p == "9787")),
        "EXPOSE 9787"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_and_local_tools() {
    let ignore = read("deploy/Dockerfile.dockerignore");
    let entries: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for needed in ["target", ".git"] {
        assert!(entries.contains(&needed), "deploy/Dockerfile.dockerignore must exclude {needed}");
    }
}
