//! Which notifications a sink wants (pure): its `min_severity` and its optional
//! `match = { accounts, regions, clusters, severities }`. Within one key any value matches; across
//! keys all must; a key left out matches everything. Cluster names are globs (`*`, `?`).

use serde::Deserialize;

use crate::model::{ClusterId, Severity};

/// `match = { … }` of one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// AWS account ids, exactly.
    pub accounts: Option<Vec<String>>,
    /// AWS regions, exactly.
    pub regions: Option<Vec<String>>,
    /// EKS cluster names or globs: `prod-*`, `eu-?-main`.
    pub clusters: Option<Vec<String>>,
    /// Only findings of these severities (beside `min_severity`).
    pub severities: Option<Vec<Severity>>,
}

impl Match {
    /// An empty list matches nothing, which is never what was meant: refuse it.
    pub fn check(&self) -> Result<(), String> {
        let lists = [
            ("accounts", self.accounts.as_ref().map(Vec::len)),
            ("regions", self.regions.as_ref().map(Vec::len)),
            ("clusters", self.clusters.as_ref().map(Vec::len)),
            ("severities", self.severities.as_ref().map(Vec::len)),
        ];
        match lists.iter().find(|(_, n)| *n == Some(0)) {
            Some((key, _)) => {
                Err(format!("match.{key} is empty: it would match nothing; leave the key out to match all"))
            }
            None => Ok(()),
        }
    }

    pub fn cluster(&self, c: &ClusterId) -> bool {
        let any =
            |list: &Option<Vec<String>>, f: &dyn Fn(&str) -> bool| list.as_ref().is_none_or(|l| l.iter().any(|v| f(v)));
        any(&self.accounts, &|a| a == c.account_id)
            && any(&self.regions, &|r| r == c.region)
            && any(&self.clusters, &|g| glob(g, &c.name))
    }

    pub fn severity(&self, s: Severity) -> bool {
        self.severities.as_ref().is_none_or(|l| l.contains(&s))
    }
}

/// Where notifications go, as the pure policy sees a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub sink: super::SinkName,
    pub min_severity: Severity,
    pub matcher: Match,
    pub granularity: super::Granularity,
}

impl Route {
    pub fn wants(&self, c: &ClusterId, s: Severity) -> bool {
        s >= self.min_severity && self.matcher.severity(s) && self.matcher.cluster(c)
    }
}

/// `*` any run of characters, `?` one character, everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`: linear in practice.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_a_shell_would() {
        let cases = [
            ("prod-*", "prod-eu1", true),
            ("prod-*", "prod-", true),
            ("prod-*", "staging-prod-eu1", false),
            ("*-eu?", "prod-eu1", true),
            ("*-eu?", "prod-eu12", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob(pattern, text), want, "{pattern} vs {text}");
        }
    }

    fn cluster(account: &str, region: &str, name: &str) -> ClusterId {
        ClusterId { account_id: account.into(), region: region.into(), name: name.into() }
    }

    #[test]
    fn a_route_wants_what_every_given_key_and_the_minimum_severity_allow() {
        let m: Match = toml::from_str(
            r#"accounts = ["111122223333"]
               clusters = ["prod-*"]
               severities = ["critical", "low"]"#,
        )
        .unwrap();
        let route = Route {
            sink: super::super::SinkName::explicit("r").unwrap(),
            min_severity: Severity::Medium,
            matcher: m,
            granularity: super::super::Granularity::Notification,
        };
        let cases = [
            (cluster("111122223333", "eu-west-1", "prod-eu1"), Severity::Critical, true),
            (cluster("111122223333", "us-east-1", "prod-us1"), Severity::Critical, true),
            (cluster("111122223333", "eu-west-1", "prod-eu1"), Severity::High, false),
            (cluster("111122223333", "eu-west-1", "prod-eu1"), Severity::Low, false),
            (cluster("444455556666", "eu-west-1", "prod-eu1"), Severity::Critical, false),
            (cluster("111122223333", "eu-west-1", "staging"), Severity::Critical, false),
        ];
        for (c, s, want) in cases {
            assert_eq!(route.wants(&c, s), want, "{c} {s}");
        }
        assert!(Match::default().cluster(&cluster("1", "r", "n")), "no match table matches everything");
    }

    #[test]
    fn an_empty_list_or_an_unknown_key_is_refused() {
        let empty: Match = toml::from_str("regions = []").unwrap();
        assert!(empty.check().unwrap_err().contains("match.regions is empty"));
        assert!(toml::from_str::<Match>("cluster = [\"x\"]").is_err());
        assert!(toml::from_str::<Match>("severities = [\"urgent\"]").is_err());
    }
}
