//! The command line explains itself: every flag has help and the enumerated ones list their
//! values; `completions` and `man` generate from the same definition; a missing config file and
//! missing AWS credentials each end in one clear sentence that says what to do.

use std::path::Path;
use std::process::{Command, Output};

use clap::CommandFactory;

fn sgdrift(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sgdrift"));
    cmd.args(args).env_remove("SGDRIFT_CONFIG").env_remove("SGDRIFT_LOG_FORMAT");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every subcommand, nested ones included, with its full name (`sgdrift baseline show`).
fn commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
    let name = format!("{prefix}{}", cmd.get_name());
    out.push((name.clone(), cmd.clone()));
    for sub in cmd.get_subcommands() {
        commands(sub, &format!("{name} "), out);
    }
}

#[test]
fn every_flag_and_argument_of_every_command_has_help() {
    let mut all = Vec::new();
    commands(&sgdrift::cli::Cli::command(), "", &mut all);
    assert!(all.len() >= 9, "subcommands: {:?}", all.iter().map(|(n, _)| n).collect::<Vec<_>>());
    for (name, cmd) in &all {
        assert!(cmd.get_about().is_some() || name == "sgdrift help", "`{name}` has no description");
        for arg in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.len() > 10, "`{name}` --{} has no help text", arg.get_id());
        }
    }
}

#[test]
fn enumerated_flags_list_their_values_in_help() {
    let cases: [(&[&str], &[&str]); 5] = [
        (&["baseline", "show", "--help"], &["eks-minimal", "eks-strict"]),
        (&["fix", "--help"], &["--apply", "--min-severity", "low", "medium", "high", "critical"]),
        (&["check", "--help"], &["text", "json"]),
        (&["completions", "--help"], &["bash", "zsh", "fish", "powershell", "elvish"]),
        (&["--help"], &["text", "json"]),
    ];
    for (args, values) in cases {
        let out = run(&mut sgdrift(args));
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        for value in values {
            assert!(help.contains(value), "{args:?} does not list `{value}`:\n{help}");
        }
    }
}

#[test]
fn completions_are_generated_for_each_shell_and_bash_accepts_its_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&mut sgdrift(&["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        // fish names long flags `-l config`, every other shell `--config`.
        let flags: [&str; 2] = if shell == "fish" { ["-l config", "-l fail-on"] } else { ["--config", "--fail-on"] };
        for word in ["sgdrift", "check", "record"].into_iter().chain(flags) {
            assert!(script.contains(word), "the {shell} completions lack `{word}`");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join("sgdrift.bash");
            std::fs::write(&file, &script).expect("write the script");
            let check = run(Command::new("bash").arg("-n").arg(&file));
            assert!(check.status.success(), "bash -n rejects the completions: {}", text(&check.stderr));
        }
    }
}

#[test]
fn the_man_page_is_roff_with_every_subcommand_and_one_page_each_on_request() {
    let out = run(&mut sgdrift(&["man"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH sgdrift 1"), "not a man page:\n{page}");
    for sub in ["run", "check", "record", "fix", "baseline", "config", "completions", "man"] {
        assert!(page.contains(sub), "the man page does not mention `{sub}`");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(sgdrift(&["man", "--dir"]).arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for file in ["sgdrift.1", "sgdrift-check.1", "sgdrift-fix.1", "sgdrift-baseline-show.1", "sgdrift-config-check.1"] {
        let path = dir.path().join(file);
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(page.contains(".TH"), "{file} is not a man page");
    }
}

#[test]
fn a_missing_config_file_is_one_sentence_that_points_at_the_config_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nowhere.toml");
    for args in [&["check", "--config"][..], &["config", "check", "--config"], &["run", "--config"]] {
        let out = run(sgdrift(args).arg(&missing));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?} printed more than one line:\n{stderr}");
        let line = lines[0];
        assert!(line.contains(&missing.display().to_string()), "{line}");
        assert!(line.contains("does not exist") && line.contains("--config"), "{line}");
        assert!(!line.contains("os error"), "the OS error is not repeated: {line}");
    }
}

#[test]
fn missing_aws_credentials_say_so_and_what_to_set_instead_of_the_sdk_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sgdrift.toml");
    std::fs::write(
        &config,
        "[source]\nkind = \"aws\"\n[poll]\ntimeout = \"5s\"\n[[targets]]\nregions = [\"eu-west-1\"]\nclusters = [\"*\"]\n\
         [alerts]\nstate_file = \"state.json\"\n",
    )
    .expect("write the config");
    let out = run(no_credentials(sgdrift(&["check", "--config"]).arg(&config), dir.path()));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("no AWS credentials found (set AWS_ACCESS_KEY_ID"), "{all}");
    for dump in ["DispatchFailure", "dispatch failure", "ConnectorError", "the credential provider was not enabled"] {
        assert!(!all.contains(dump), "the SDK's report leaks through (`{dump}`):\n{all}");
    }
}

/// An environment where the standard chain finds nothing and nothing leaves the machine: no
/// credential variables, no profile files, no instance metadata, endpoints on a closed port.
fn no_credentials<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "eu-west-1")
        .current_dir(dir)
}
