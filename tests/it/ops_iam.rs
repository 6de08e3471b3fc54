//! The IAM policies of deploy/iam: the read policy allows exactly the AWS operations the `aws`
//! source calls, derived from its code and the SDK crates it calls them through; the daemon's own
//! role may assume reader roles and nothing more; the CloudFormation template embeds the same
//! policies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::ops_common::{read, read_json, repo, rust_files, strip_line_comments};

/// STS calls that no identity policy grants: every principal may ask who it is.
const NEEDS_NO_PERMISSION: [&str; 1] = ["sts:GetCallerIdentity"];

/// The SDK crates the aws source calls, with the IAM prefix of their actions.
const SERVICES: [(&str, &str); 3] = [("aws-sdk-ec2", "ec2"), ("aws-sdk-eks", "eks"), ("aws-sdk-sts", "sts")];

/// Where Cargo unpacked `crate_name` at the version Cargo.lock pins.
fn sdk_source(crate_name: &str) -> PathBuf {
    let lock = read("Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains(&format!("name = \"{crate_name}\"\n")))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("Cargo.lock does not pin {crate_name}"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo"));
    let registry = cargo_home.join("registry/src");
    let entries = std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}: the SDK sources come from `cargo fetch`", registry.display()));
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("{crate_name}-{version}")))
        .find(|p| p.join("src/operation").is_dir())
        .unwrap_or_else(|| {
            panic!("{crate_name} {version} is not unpacked under {}: run `cargo fetch`", registry.display())
        })
}

/// `snake_case` method name → IAM action (`describe_security_groups` → `ec2:DescribeSecurityGroups`),
/// read from each SDK crate's operation modules, whose orchestrator names the operation.
fn sdk_operations() -> BTreeMap<String, String> {
    sdk_operations_of(&SERVICES)
}

/// [`sdk_operations`] of the given SDK crates only.
fn sdk_operations_of(services: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut ops = BTreeMap::new();
    for &(crate_name, prefix) in services {
        let dir = sdk_source(crate_name).join("src/operation");
        for entry in std::fs::read_dir(&dir).expect("operation directory").filter_map(|e| e.ok()) {
            let path = entry.path();
            let Some(snake) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".rs")) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let Some(name) = text.split("Layer::new(\"").nth(1).and_then(|s| s.split('"').next()) else {
                continue;
            };
            let action = format!("{prefix}:{name}");
            if let Some(other) = ops.insert(snake.to_string(), action.clone()) {
                panic!("`{snake}` is an operation of two SDK crates ({other} and {action}): this test cannot tell which is called");
            }
        }
    }
    assert!(ops.len() > 20, "found only {} SDK operations: the SDK sources look incomplete", ops.len());
    ops
}

/// Every `.name(` method call in `source`, whitespace allowed around the name.
fn method_calls(source: &str) -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    for piece in source.split('.').skip(1) {
        let piece = piece.trim_start();
        let name: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() && piece[name.len()..].trim_start().starts_with('(') {
            calls.insert(name);
        }
    }
    calls
}

/// The aws source's code: `src/source/aws.rs`, `src/source/aws/`, and `src/source/session.rs`,
/// where a target's role is assumed.
fn aws_source_code() -> String {
    let files: Vec<PathBuf> = ["src/source/aws.rs", "src/source/aws", "src/source/session.rs"]
        .iter()
        .flat_map(|p| rust_files(&repo().join(p)))
        .collect();
    assert!(!files.is_empty(), "src/source/aws.rs does not exist");
    files
        .iter()
        .map(|f| strip_line_comments(&std::fs::read_to_string(f).expect("readable")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The IAM actions the aws source's code calls through the SDK.
fn called_actions() -> BTreeSet<String> {
    let ops = sdk_operations();
    let code = aws_source_code();
    let mut actions: BTreeSet<String> = method_calls(&code).iter().filter_map(|m| ops.get(m).cloned()).collect();
    // Role chaining through aws-config calls sts:AssumeRole inside the provider.
    if code.contains("AssumeRoleProvider") {
        actions.insert("sts:AssumeRole".into());
    }
    assert!(
        actions.iter().any(|a| !a.starts_with("sts:")),
        "src/source/aws.rs calls no EC2 or EKS operation yet: this test derives the policy's actions from it"
    );
    actions
}

/// Every action an `Allow` statement of `policy` grants, and a failure for anything but plain
/// `service:Operation` actions in a well-formed document.
fn allowed_actions(name: &str, policy: &Value) -> BTreeSet<String> {
    assert_eq!(policy["Version"], "2012-10-17", "{name}: Version must be 2012-10-17");
    let statements = policy["Statement"].as_array().unwrap_or_else(|| panic!("{name}: Statement must be a list"));
    let mut actions = BTreeSet::new();
    for s in statements {
        assert_eq!(s["Effect"], "Allow", "{name}: every statement allows ({s})");
        assert!(
            s["Sid"].as_str().is_some_and(|sid| sid.chars().all(|c| c.is_ascii_alphanumeric())),
            "{name}: Sid must be alphanumeric ({s})"
        );
        let list: Vec<&str> = match &s["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().map(|v| v.as_str().expect("actions are strings")).collect(),
            other => panic!("{name}: Action must be a string or a list, not {other}"),
        };
        for action in list {
            let (service, op) =
                action.split_once(':').unwrap_or_else(|| panic!("{name}: `{action}` is not service:Operation"));
            assert!(
                service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && op.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}: `{action}` is not a plain action (no wildcards)"
            );
            assert!(actions.insert(action.to_string()), "{name}: `{action}` is granted twice");
        }
    }
    actions
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

#[test]
fn the_read_policy_allows_exactly_the_aws_operations_the_source_calls() {
    let policy = read_json("deploy/iam/sgdrift-read.json");
    let granted = allowed_actions("sgdrift-read.json", &policy);
    let needed: BTreeSet<String> = called_actions().into_iter().filter(|a| !a.starts_with("sts:")).collect();
    assert!(
        granted == needed,
        "deploy/iam/sgdrift-read.json and src/source/aws.rs disagree\n  called but not granted: {:?}\n  granted but never called: {:?}",
        diff(&needed, &granted),
        diff(&granted, &needed)
    );
    // Describe and List calls support no resource-level permissions except on EKS clusters,
    // node groups, Fargate profiles and add-ons (the IAM service authorization reference for
    // Amazon EKS); everything else must be "*".
    for s in policy["Statement"].as_array().unwrap() {
        let eks_scoped = s["Action"].as_array().is_some_and(|a| {
            a.iter().all(|v| {
                [
                    "eks:DescribeCluster",
                    "eks:ListNodegroups",
                    "eks:DescribeNodegroup",
                    "eks:ListFargateProfiles",
                    "eks:DescribeFargateProfile",
                    "eks:DescribeAddon",
                ]
                .contains(&v.as_str().unwrap())
            })
        });
        if !eks_scoped {
            assert_eq!(s["Resource"], "*", "sgdrift-read.json: {} must use Resource \"*\"", s["Sid"]);
        }
    }
}

#[test]
fn the_daemon_role_may_assume_reader_roles_and_nothing_else() {
    let called = called_actions();
    let policy = read_json("deploy/iam/sgdrift-assume-role.json");
    let granted = allowed_actions("sgdrift-assume-role.json", &policy);
    let needed: BTreeSet<String> =
        called.into_iter().filter(|a| a.starts_with("sts:") && !NEEDS_NO_PERMISSION.contains(&a.as_str())).collect();
    assert!(
        needed.contains("sts:AssumeRole"),
        "src/source/aws.rs never assumes a target's role_arn (no AssumeRoleProvider, no .assume_role()), \
         though design.md requires it"
    );
    assert_eq!(granted, needed, "sgdrift-assume-role.json must grant exactly the STS calls that need a permission");
    for s in policy["Statement"].as_array().unwrap() {
        for r in s["Resource"].as_array().expect("Resource is a list of role ARNs") {
            let arn = r.as_str().unwrap();
            assert!(arn.starts_with("arn:aws:iam::") && arn.contains(":role/"), "`{arn}` is not a role ARN");
        }
    }
}

#[test]
fn the_cross_account_template_embeds_the_read_and_trust_policies() {
    let template = read_json("deploy/iam/cross-account-role.json");
    let role = &template["Resources"]["SgdriftReadRole"];
    assert_eq!(role["Type"], "AWS::IAM::Role");
    let policies = role["Properties"]["Policies"].as_array().expect("the role has inline policies");
    assert_eq!(policies.len(), 1);
    assert_eq!(
        policies[0]["PolicyDocument"],
        read_json("deploy/iam/sgdrift-read.json"),
        "the template's inline policy must be deploy/iam/sgdrift-read.json"
    );

    let mut trust = read_json("deploy/iam/trust-policy.json");
    allowed_actions("trust-policy.json", &trust);
    let principal =
        trust["Statement"][0]["Principal"]["AWS"].as_str().expect("the trust policy names a role").to_string();
    assert!(principal.starts_with("arn:aws:iam::") && principal.contains(":role/"), "`{principal}` is not a role ARN");
    trust["Statement"][0]["Principal"]["AWS"] = serde_json::json!({"Ref": "DaemonRoleArn"});
    assert_eq!(
        role["Properties"]["AssumeRolePolicyDocument"], trust,
        "the template's trust policy must be deploy/iam/trust-policy.json with the daemon role as a parameter"
    );
    assert!(template["Parameters"]["DaemonRoleArn"].is_object());
}

#[test]
fn the_daemon_role_trust_policies_name_the_sgdrift_service_account() {
    for (file, action) in [
        ("deploy/iam/irsa-trust-policy.json", "sts:AssumeRoleWithWebIdentity"),
        ("deploy/iam/pod-identity-trust-policy.json", "sts:AssumeRole"),
    ] {
        let policy = read_json(file);
        let granted = allowed_actions(file, &policy);
        assert!(granted.contains(action), "{file} must allow {action}");
        let conditions = policy["Statement"][0]["Condition"]["StringEquals"].to_string();
        assert!(
            conditions.contains("system:serviceaccount:sgdrift:sgdrift")
                || (conditions.contains("\"sgdrift\"") && conditions.contains("kubernetes-service-account")),
            "{file} must pin the sgdrift/sgdrift service account: {conditions}"
        );
    }
    // The manifests use the same namespace and service account.
    let sa = read("deploy/kubernetes/serviceaccount.yaml");
    assert!(sa.contains("name: sgdrift\n") && sa.contains("namespace: sgdrift\n"));
}

#[test]
fn the_organization_policy_allows_the_listing_calls_discovery_makes_and_the_member_role() {
    let ops = sdk_operations_of(&[("aws-sdk-organizations", "organizations")]);
    let code = strip_line_comments(&read("src/source/organization.rs"));
    let called: BTreeSet<String> = method_calls(&code).iter().filter_map(|m| ops.get(m).cloned()).collect();
    assert!(
        called.contains("organizations:ListAccounts"),
        "src/source/organization.rs no longer lists accounts: {called:?}"
    );
    let policy = read_json("deploy/iam/sgdrift-organization.json");
    let granted = allowed_actions("sgdrift-organization.json", &policy);
    let mut needed = called;
    // Each member account is read through its role, assumed by the credentials provider.
    needed.insert("sts:AssumeRole".into());
    assert!(
        granted == needed,
        "deploy/iam/sgdrift-organization.json and src/source/organization.rs disagree\n  called but not granted: {:?}\n  granted but never called: {:?}",
        diff(&needed, &granted),
        diff(&granted, &needed)
    );
    let assume = policy["Statement"].as_array().unwrap().iter().find(|s| s["Action"][0] == "sts:AssumeRole").unwrap();
    for r in assume["Resource"].as_array().expect("Resource is a list of role ARNs") {
        let arn = r.as_str().unwrap();
        assert!(
            arn.starts_with("arn:aws:iam::*:role/"),
            "`{arn}` must name the member role in any account, and nothing else"
        );
    }
}

/// The code of `sgdrift fix --apply`'s writes.
fn write_code() -> String {
    strip_line_comments(&read("src/source/write.rs"))
}

#[test]
fn the_fix_policy_allows_exactly_the_calls_of_fix_and_nothing_the_read_policy_has() {
    let ops = sdk_operations();
    let called: BTreeSet<String> = method_calls(&write_code()).iter().filter_map(|m| ops.get(m).cloned()).collect();
    assert!(called.iter().any(|a| a.starts_with("ec2:Revoke")), "src/source/write.rs revokes nothing: {called:?}");
    let policy = read_json("deploy/iam/sgdrift-fix.json");
    let granted = allowed_actions("sgdrift-fix.json", &policy);
    assert!(
        granted == called,
        "deploy/iam/sgdrift-fix.json and src/source/write.rs disagree\n  called but not granted: {:?}\n  granted but never called: {:?}",
        diff(&called, &granted),
        diff(&granted, &called)
    );
    let read = allowed_actions("sgdrift-read.json", &read_json("deploy/iam/sgdrift-read.json"));
    assert!(
        read.is_disjoint(&granted),
        "the read policy must not grant what only fix needs: {:?}",
        read.intersection(&granted).collect::<Vec<_>>()
    );
    // Writes are scoped to security groups; describes support no resource-level permission.
    for s in policy["Statement"].as_array().unwrap() {
        let writes = s["Action"].as_array().unwrap().iter().any(|a| !a.as_str().unwrap().contains(":Describe"));
        let want = if writes { "arn:aws:ec2:*:*:security-group/*" } else { "*" };
        assert_eq!(s["Resource"], want, "sgdrift-fix.json: {}", s["Sid"]);
    }
}

/// The SDK crates the change feed calls (src/events/aws.rs).
const EVENT_SERVICES: [(&str, &str); 2] = [("aws-sdk-sqs", "sqs"), ("aws-sdk-cloudtrail", "cloudtrail")];

/// Batch calls that IAM authorizes with the single call's action.
const BATCH_ACTIONS: [(&str, &str); 1] = [("sqs:DeleteMessageBatch", "sqs:DeleteMessage")];

#[test]
fn the_events_policy_allows_exactly_the_calls_of_the_change_feed() {
    let ops = sdk_operations_of(&EVENT_SERVICES);
    let code = strip_line_comments(&read("src/events/aws.rs"));
    let needed: BTreeSet<String> = method_calls(&code)
        .iter()
        .filter_map(|m| ops.get(m).cloned())
        .map(|a| BATCH_ACTIONS.iter().find(|(batch, _)| *batch == a).map_or(a, |(_, single)| single.to_string()))
        .collect();
    assert!(needed.contains("sqs:ReceiveMessage") && needed.contains("cloudtrail:LookupEvents"), "{needed:?}");
    let policy = read_json("deploy/iam/sgdrift-events.json");
    let granted = allowed_actions("sgdrift-events.json", &policy);
    assert!(
        granted == needed,
        "deploy/iam/sgdrift-events.json and src/events/aws.rs disagree\n  called but not granted: {:?}\n  granted but never called: {:?}",
        diff(&needed, &granted),
        diff(&granted, &needed)
    );
    for s in policy["Statement"].as_array().unwrap() {
        let sqs = s["Action"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().starts_with("sqs:"));
        if sqs {
            assert_ne!(s["Resource"], "*", "the queue actions are scoped to the queue ({})", s["Sid"]);
        }
    }
}

#[test]
fn only_the_fix_command_writes_and_the_daemon_never_does() {
    // The read source makes no write call.
    let ops = sdk_operations();
    let writes: BTreeSet<String> = method_calls(&write_code())
        .iter()
        .filter_map(|m| ops.get(m).cloned())
        .filter(|a| !a.contains(":Describe"))
        .collect();
    let read_calls = called_actions();
    assert!(
        read_calls.is_disjoint(&writes),
        "src/source/aws.rs calls a write: {:?}",
        read_calls.intersection(&writes).collect::<Vec<_>>()
    );
    // And the writer is built in one place, the `fix` command.
    let users: Vec<String> = rust_files(&repo().join("src"))
        .into_iter()
        .filter(|f| !f.ends_with("source/write.rs"))
        .filter(|f| {
            let code = strip_line_comments(&std::fs::read_to_string(f).expect("readable"));
            code.contains("source::write") || code.contains("write::Writer")
        })
        .map(|f| f.strip_prefix(repo()).unwrap_or(&f).display().to_string())
        .collect();
    assert_eq!(users, ["src/app.rs"], "only `sgdrift fix` may build the EC2 writer");
}

#[test]
fn the_events_template_grants_the_daemon_the_queue_actions_of_the_events_policy() {
    let template = read_json("deploy/events/sgdrift-events.json");
    let inline = &template["Resources"]["DaemonQueueAccess"]["Properties"]["PolicyDocument"];
    let in_template = allowed_actions("sgdrift-events.json (template)", inline);
    let policy = read_json("deploy/iam/sgdrift-events.json");
    let queue_actions: BTreeSet<String> =
        allowed_actions("sgdrift-events.json", &policy).into_iter().filter(|a| a.starts_with("sqs:")).collect();
    assert_eq!(in_template, queue_actions);
}
