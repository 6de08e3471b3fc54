//! `check --format asff`: the report's findings in the AWS Security Finding Format, ready for
//! `aws securityhub batch-import-findings --findings file://…`.
//!
//! Sources: the required top-level attributes and their limits
//! (docs.aws.amazon.com/securityhub/latest/userguide/asff-required-attributes.html), the product
//! ARN of a custom integration (`arn:<partition>:securityhub:<region>:<account>:product/<account>/default`,
//! securityhub/latest/userguide/securityhub-custom-providers.html) and the `AwsEc2SecurityGroup`
//! and `AwsEksCluster` resource types (asff-resources.html).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::model::{Finding, FindingKind, Severity};

use super::report::{ClusterReport, Report};

/// The only ASFF version Security Hub accepts.
const SCHEMA_VERSION: &str = "2018-10-08";
/// Security Hub's limits: longer values make the whole import call fail.
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 1024;
const RECOMMENDATION_MAX: usize = 512;

/// One ASFF finding, with the required attributes and the optional ones sgdrift knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffFinding {
    pub schema_version: &'static str,
    pub id: String,
    pub product_arn: String,
    pub product_name: &'static str,
    pub company_name: &'static str,
    pub generator_id: String,
    pub aws_account_id: String,
    pub region: String,
    pub types: Vec<&'static str>,
    pub first_observed_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub severity: AsffSeverity,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<AsffRemediation>,
    pub product_fields: std::collections::BTreeMap<&'static str, String>,
    pub resources: Vec<AsffResource>,
    pub record_state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffSeverity {
    pub label: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffRemediation {
    pub recommendation: AsffRecommendation,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffRecommendation {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffResource {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub id: String,
    pub partition: &'static str,
    pub region: String,
}

/// The drift of `report` as ASFF findings, in the report's order. Suppressed findings are left
/// out: an operator accepted them with a reason and an expiry, and Security Hub would raise
/// them again as active. Clusters that could not be read have no findings to send; their
/// error is in the text and JSON reports and the exit code.
pub fn findings(report: &Report) -> Vec<AsffFinding> {
    report
        .clusters
        .iter()
        .flat_map(|cluster| cluster.drift().map(move |f| finding(report.generated_at, cluster, f)))
        .collect()
}

fn finding(now: DateTime<Utc>, cluster: &ClusterReport, f: &Finding) -> AsffFinding {
    let partition = partition(&cluster.region);
    let (account, region) = (&cluster.account_id, &cluster.region);
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let first_seen = f.first_seen.unwrap_or(now);
    AsffFinding {
        schema_version: SCHEMA_VERSION,
        id: format!("sgdrift/{account}/{region}/{}/{}", cluster.cluster, f.id),
        product_arn: format!("arn:{partition}:securityhub:{region}:{account}:product/{account}/default"),
        product_name: "sgdrift",
        company_name: "sgdrift",
        generator_id: generator_id(f),
        aws_account_id: account.clone(),
        region: region.clone(),
        types: vec![finding_type(f)],
        first_observed_at: stamp(first_seen),
        created_at: stamp(first_seen),
        updated_at: stamp(now),
        severity: AsffSeverity { label: severity_label(f.severity) },
        title: clip(&format!("EKS cluster {}: {} {}", cluster.cluster, f.kind.as_str(), f.rule_text()), TITLE_MAX),
        description: clip(&description(cluster, f), DESCRIPTION_MAX),
        remediation: recommendation(f).map(|text| AsffRemediation {
            recommendation: AsffRecommendation { text: clip(&text, RECOMMENDATION_MAX) },
        }),
        product_fields: product_fields(cluster, f),
        resources: vec![
            AsffResource {
                kind: "AwsEc2SecurityGroup",
                id: format!("arn:{partition}:ec2:{region}:{account}:security-group/{}", f.group_id),
                partition,
                region: region.clone(),
            },
            AsffResource {
                kind: "AwsEksCluster",
                id: format!("arn:{partition}:eks:{region}:{account}:cluster/{}", cluster.cluster),
                partition,
                region: region.clone(),
            },
        ],
        record_state: "ACTIVE",
    }
}

/// One generator per kind of check, so Security Hub groups findings by what found them.
fn generator_id(f: &Finding) -> String {
    match (f.kind, f.flow) {
        (FindingKind::Flow, Some(flow)) => format!("sgdrift/flow/{flow}"),
        (kind, _) => format!("sgdrift/{}", kind.as_str()),
    }
}

/// `namespace/category[/classifier]`, only with names from the ASFF types taxonomy
/// (securityhub/latest/userguide/asff-types-taxonomy.html): an unexpected rule widens network
/// reachability; a missing one is a deviation from best practice; a closed flow stops the
/// cluster working, an availability effect.
fn finding_type(f: &Finding) -> &'static str {
    match f.kind {
        FindingKind::Unexpected => "Software and Configuration Checks/AWS Security Best Practices/Network Reachability",
        FindingKind::Missing => "Software and Configuration Checks/AWS Security Best Practices",
        FindingKind::Flow => "Effects/Denial of Service",
    }
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
    }
}

fn description(cluster: &ClusterReport, f: &Finding) -> String {
    let mut text = format!(
        "{} Security group {} ({}) of EKS cluster {}: {} rule `{}`.",
        f.reason,
        f.group_id,
        f.role,
        cluster.cluster,
        f.kind.as_str(),
        f.rule_text()
    );
    if let Some(by) = &f.changed_by {
        text.push_str(&format!(" Changed by {by}."));
    }
    text
}

fn recommendation(f: &Finding) -> Option<String> {
    let r = f.remediation.as_ref()?;
    Some(match &r.manual {
        Some(manual) => format!("{manual} Console or CLI fix: {}", r.aws_cli),
        None => r.aws_cli.clone(),
    })
}

fn product_fields(cluster: &ClusterReport, f: &Finding) -> std::collections::BTreeMap<&'static str, String> {
    let mut fields = std::collections::BTreeMap::from([
        ("sgdrift/Cluster", cluster.cluster.clone()),
        ("sgdrift/FindingId", f.id.clone()),
        ("sgdrift/Kind", f.kind.as_str().to_string()),
        ("sgdrift/Role", f.role.to_string()),
        ("sgdrift/Rule", f.rule_text().to_string()),
    ]);
    if let Some(flow) = f.flow {
        fields.insert("sgdrift/Flow", flow.to_string());
    }
    fields
}

/// The AWS partition of a region: its ARNs must say it.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// At most `max` characters, ending in `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::report::{ClusterStatus, Stats};
    use crate::model::{ChangedBy, FlowName, Remediation, RemediationAction};

    fn cluster(region: &str, findings: Vec<Finding>) -> ClusterReport {
        ClusterReport {
            status: ClusterStatus::Drift,
            error: None,
            findings,
            ..ClusterReport::failed("111122223333", region, "prod-eu1", None)
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn every_required_attribute_is_set_and_ids_name_the_partition_account_and_region() {
        let f = Finding::test()
            .critical()
            .on("sg-0abc")
            .role(crate::model::Role::Node)
            .rule("ingress tcp 22 from 0.0.0.0/0")
            .build();
        let report =
            Report::new(at("2026-11-30T10:00:00Z"), vec![cluster("eu-west-1", vec![f.clone()])], Stats::default());
        let json = serde_json::to_value(findings(&report)).unwrap();
        let one = &json[0];
        for key in [
            "AwsAccountId",
            "CreatedAt",
            "Description",
            "GeneratorId",
            "Id",
            "ProductArn",
            "Resources",
            "SchemaVersion",
            "Severity",
            "Title",
            "Types",
            "UpdatedAt",
        ] {
            assert!(!one[key].is_null(), "{key} missing in {one}");
        }
        assert_eq!(one["SchemaVersion"], "2018-10-08");
        assert_eq!(one["ProductArn"], "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default");
        assert_eq!(one["Severity"]["Label"], "CRITICAL");
        assert_eq!(one["Resources"][0]["Type"], "AwsEc2SecurityGroup");
        assert_eq!(one["Resources"][0]["Id"], "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0abc");
        assert_eq!(one["Resources"][1]["Id"], "arn:aws:eks:eu-west-1:111122223333:cluster/prod-eu1");
        assert_eq!(one["Id"], format!("sgdrift/111122223333/eu-west-1/prod-eu1/{}", f.id));
        assert_eq!(one["UpdatedAt"], "2026-11-30T10:00:00.000Z");
        assert_eq!(one["ProductFields"]["sgdrift/Rule"], "ingress tcp 22 from 0.0.0.0/0");
        assert!(one["Title"].as_str().unwrap().contains("ingress tcp 22 from 0.0.0.0/0"));
    }

    #[test]
    fn suppressed_findings_and_unreadable_clusters_send_nothing() {
        let suppressed = Finding::test().suppressed_by("internal NLB (until 2027-03-31)").build();
        let failed = ClusterReport::failed("111122223333", "eu-west-1", "gone", Some("AccessDenied".into()));
        let report = Report::new(
            at("2026-11-30T10:00:00Z"),
            vec![cluster("eu-west-1", vec![suppressed]), failed],
            Stats::default(),
        );
        assert!(findings(&report).is_empty());
    }

    #[test]
    fn partitions_severities_and_generators_follow_the_finding() {
        // (region, partition)
        for (region, want) in [
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
        ] {
            assert_eq!(partition(region), want, "{region}");
        }
        // (finding, generator, severity label)
        let cases = [
            (Finding::test().low().build(), "sgdrift/unexpected", "LOW"),
            (Finding::test().high().missing().build(), "sgdrift/missing", "HIGH"),
            (Finding::test().critical().flow(FlowName::Kubelet).build(), "sgdrift/flow/kubelet", "CRITICAL"),
        ];
        for (f, generator, label) in cases {
            assert_eq!(generator_id(&f), generator);
            assert_eq!(severity_label(f.severity), label);
        }
    }

    #[test]
    fn long_texts_are_clipped_to_security_hubs_limits_and_actor_and_fix_are_carried() {
        let mut f = Finding::test().reason(&"x".repeat(2000)).build();
        f.changed_by = Some(ChangedBy {
            arn: "arn:aws:sts::111122223333:assumed-role/admin/jo".into(),
            source_ip: None,
            user_agent: None,
            event_time: at("2026-11-30T09:59:00Z"),
            event_name: "AuthorizeSecurityGroupIngress".into(),
            event_id: "e-1".into(),
        });
        f.remediation = Some(Remediation {
            action: RemediationAction::Revoke,
            aws_cli: "aws ec2 revoke-security-group-ingress --group-id sg-0abc".into(),
            manual: None,
        });
        let report = Report::new(at("2026-11-30T10:00:00Z"), vec![cluster("eu-west-1", vec![f])], Stats::default());
        let one = &findings(&report)[0];
        assert_eq!(one.description.chars().count(), DESCRIPTION_MAX);
        assert!(one.description.ends_with('…'));
        assert_eq!(
            one.remediation.as_ref().unwrap().recommendation.text,
            "aws ec2 revoke-security-group-ingress --group-id sg-0abc"
        );
        let short = Finding::test().build();
        let report = Report::new(
            at("2026-11-30T10:00:00Z"),
            vec![cluster(
                "eu-west-1",
                vec![{
                    let mut s = short;
                    s.changed_by = one_actor();
                    s
                }],
            )],
            Stats::default(),
        );
        assert!(findings(&report)[0]
            .description
            .contains("Changed by arn:aws:sts::111122223333:assumed-role/admin/jo"));
    }

    fn one_actor() -> Option<ChangedBy> {
        Some(ChangedBy {
            arn: "arn:aws:sts::111122223333:assumed-role/admin/jo".into(),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("aws-cli/2.17.0".into()),
            event_time: "2026-11-30T09:59:00Z".parse().unwrap(),
            event_name: "AuthorizeSecurityGroupIngress".into(),
            event_id: "e-1".into(),
        })
    }
}
