//! `[[exceptions]]`: operator-approved drift, with a reason and an expiry date.

use chrono::NaiveDate;

use crate::model::{ClusterId, Direction, Finding, ParseError, Role, Traffic};

use super::PeerSpec;

/// One configured exception. Parsed at config load; `rule` uses the grammar
/// `<direction> <protocol> [<ports>] from|to <peer>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub cluster: Option<String>,
    pub role: Option<Role>,
    pub group_id: Option<String>,
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: PeerSpec,
    /// The rule text as written, for messages.
    pub rule_text: String,
    pub reason: String,
    pub expires: NaiveDate,
}

/// How an exception relates to a finding on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionMatch {
    /// Suppresses the finding.
    Suppresses,
    /// Would match but has expired: the finding fires.
    Expired,
    NoMatch,
}

impl Exception {
    /// Parses the rule text of an exception.
    pub fn parse_rule(text: &str) -> Result<(Direction, Traffic, PeerSpec), ParseError> {
        let _ = text;
        todo!("exception rule grammar")
    }

    pub fn is_expired(&self, today: NaiveDate) -> bool {
        today > self.expires
    }

    /// Whether this exception covers `finding` of `cluster` on `today`.
    pub fn matches(&self, cluster: &ClusterId, finding: &Finding, today: NaiveDate) -> ExceptionMatch {
        let _ = (cluster, finding, today);
        todo!("exception matching")
    }
}

impl Exception {
    /// Builds an exception from its config entry: `reason` must say why, `expires` is YYYY-MM-DD.
    pub fn from_config(cfg: &crate::config::ExceptionConfig) -> Result<Exception, String> {
        let _ = cfg;
        todo!("exception from config")
    }
}
