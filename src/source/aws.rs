//! The `aws` source: discovery and SG reads through aws-sdk-eks and aws-sdk-ec2, batched per
//! account and region, metadata cached.

use super::{CallCounts, TargetPoll, TargetSpec};

pub struct AwsSource {}

impl AwsSource {
    pub async fn poll(&self, target: &TargetSpec) -> TargetPoll {
        let _ = target;
        todo!("aws source")
    }

    pub fn call_counts(&self) -> CallCounts {
        CallCounts::new()
    }
}
