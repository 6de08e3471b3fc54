//! Which tool laid out a cluster's groups (reference §2–§4), from names, descriptions and tags.
//! Shared by the `aws` and `files` sources.

use crate::model::{SecurityGroup, Style};

/// Detects the management style from the cluster's groups (and the cluster's own tags).
pub fn detect<'a>(
    cluster_name: &str,
    cluster_tags: &std::collections::BTreeMap<String, String>,
    groups: impl IntoIterator<Item = &'a SecurityGroup>,
) -> Style {
    let _ = (cluster_name, cluster_tags, groups.into_iter().count());
    todo!("style detection")
}
