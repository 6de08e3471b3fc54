//! Organization-wide targets: the active accounts of AWS Organizations (the whole organization,
//! or some OUs and everything below them), each read through one role name.
//!
//! The calls are made with sgdrift's own credentials, which must belong to the management
//! account or a delegated administrator (deploy/iam/sgdrift-organization.json). Accounts that
//! are suspended, closed or not yet active are left out: their roles cannot be assumed.

use std::collections::BTreeSet;

use aws_sdk_organizations::Client;

use super::aws::{paginate, AwsSource};
use super::convert::{self, CallFailure, Operation};
use super::SourceError;

const LIST_ACCOUNTS: Operation = Operation::new("organizations", "ListAccounts");
const LIST_ACCOUNTS_FOR_PARENT: Operation = Operation::new("organizations", "ListAccountsForParent");
const LIST_OUS_FOR_PARENT: Operation = Operation::new("organizations", "ListOrganizationalUnitsForParent");

/// Organizations is a global service whose API lives in us-east-1 (in the `aws` partition).
const ORGANIZATIONS_REGION: &str = "us-east-1";
/// A bound on the OU tree walked: AWS allows five levels below the root and 1,000 OUs.
const MAX_OUS: usize = 2_000;

/// `organization = { role_name, ous, exclude_accounts }` of a target, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub role_name: String,
    /// OU or root ids; empty: the whole organization.
    pub ous: Vec<String>,
    pub exclude_accounts: BTreeSet<String>,
}

impl Organization {
    /// `ou-<4–32 of 0-9a-z>-<8–32 of 0-9a-z>` or a root, `r-<4–32 of 0-9a-z>`, as AWS writes them.
    pub fn is_parent_id(id: &str) -> bool {
        let run = |s: &str, min: usize| {
            (min..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        };
        if let Some(root) = id.strip_prefix("r-") {
            return run(root, 4);
        }
        match id.strip_prefix("ou-").and_then(|rest| rest.split_once('-')) {
            Some((root, ou)) => run(root, 4) && run(ou, 8),
            None => false,
        }
    }

    /// The role sgdrift assumes in `account`, in the partition of `region`.
    pub fn role_arn(&self, account: &str, region: &str) -> String {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        format!("arn:{partition}:iam::{account}:role/{}", self.role_name)
    }
}

impl AwsSource {
    /// The active accounts `org` names, sorted, without the excluded ones. One failed call fails
    /// the discovery: a partial list would silently drop accounts from the report.
    pub async fn organization_accounts(&self, org: &Organization) -> Result<Vec<String>, SourceError> {
        let conf = self.sdk_config().to_builder().region(aws_config::Region::new(ORGANIZATIONS_REGION)).build();
        let client = Client::new(&conf);
        let accounts = if org.ous.is_empty() {
            self.all_accounts(&client).await?
        } else {
            self.accounts_below(&client, &org.ous).await?
        };
        Ok(accounts
            .into_iter()
            .filter_map(|(id, active)| (active && !org.exclude_accounts.contains(&id)).then_some(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    async fn all_accounts(&self, client: &Client) -> Result<Vec<(String, bool)>, SourceError> {
        let pages = paginate(LIST_ACCOUNTS, |token| async {
            let page = self.counted(LIST_ACCOUNTS, client.list_accounts().set_next_token(token).send()).await?;
            let accounts = page.accounts().iter().filter_map(convert::organization_account).collect();
            Ok((accounts, page.next_token().map(str::to_string)))
        });
        pages.await.map_err(|f| f.error)
    }

    /// The accounts directly in each of `parents` and in every OU below them.
    async fn accounts_below(&self, client: &Client, parents: &[String]) -> Result<Vec<(String, bool)>, SourceError> {
        let mut accounts = Vec::new();
        let mut pending: Vec<String> = parents.to_vec();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        while let Some(parent) = pending.pop() {
            if !seen.insert(parent.clone()) {
                continue;
            }
            if seen.len() > MAX_OUS {
                return Err(SourceError::Client {
                    operation: LIST_OUS_FOR_PARENT.action(),
                    message: format!(
                        "more than {MAX_OUS} organizational units below {}: is the tree cyclic?",
                        parents.join(", ")
                    ),
                });
            }
            accounts.extend(self.accounts_in(client, &parent).await.map_err(|f| f.error)?);
            pending.extend(self.children_of(client, &parent).await.map_err(|f| f.error)?);
        }
        Ok(accounts)
    }

    async fn accounts_in(&self, client: &Client, parent: &str) -> Result<Vec<(String, bool)>, CallFailure> {
        paginate(LIST_ACCOUNTS_FOR_PARENT, |token| async {
            let call = client.list_accounts_for_parent().parent_id(parent).set_next_token(token).send();
            let page = self.counted(LIST_ACCOUNTS_FOR_PARENT, call).await?;
            let accounts = page.accounts().iter().filter_map(convert::organization_account).collect();
            Ok((accounts, page.next_token().map(str::to_string)))
        })
        .await
    }

    async fn children_of(&self, client: &Client, parent: &str) -> Result<Vec<String>, CallFailure> {
        paginate(LIST_OUS_FOR_PARENT, |token| async {
            let call = client.list_organizational_units_for_parent().parent_id(parent).set_next_token(token).send();
            let page = self.counted(LIST_OUS_FOR_PARENT, call).await?;
            let children = page.organizational_units().iter().filter_map(|ou| ou.id().map(str::to_string)).collect();
            Ok((children, page.next_token().map(str::to_string)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_ids_are_read_as_aws_writes_them() {
        // (id, an OU or root id)
        let cases = [
            ("r-ab12", true),
            ("ou-ab12-cdef3456", true),
            ("ou-ab12-cdef3456ghij7890", true),
            ("r-a1", false),
            ("ou-ab12", false),
            ("ou-AB12-cdef3456", false),
            ("ou-ab12-cdef", false),
            ("111122223333", false),
            ("", false),
        ];
        for (id, want) in cases {
            assert_eq!(Organization::is_parent_id(id), want, "{id}");
        }
    }

    #[test]
    fn the_member_role_is_named_in_the_regions_partition() {
        let org = Organization { role_name: "sgdrift-read".into(), ous: vec![], exclude_accounts: BTreeSet::new() };
        assert_eq!(org.role_arn("111122223333", "eu-west-1"), "arn:aws:iam::111122223333:role/sgdrift-read");
        assert_eq!(org.role_arn("111122223333", "cn-north-1"), "arn:aws-cn:iam::111122223333:role/sgdrift-read");
        assert_eq!(org.role_arn("111122223333", "us-gov-west-1"), "arn:aws-us-gov:iam::111122223333:role/sgdrift-read");
    }
}
