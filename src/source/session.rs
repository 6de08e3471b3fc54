//! The SDK configuration every AWS edge starts from (the poller, the change feed, `fix`): the
//! standard credential chain, a bound per call, and a region with the target's role assumed.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_types::timeout::TimeoutConfig;

/// The standard chain (`AWS_*` variables, profiles, web identity, IMDS), each call bounded by
/// `timeout`, retries included.
pub async fn load(timeout: Duration) -> SdkConfig {
    with_timeout(aws_config::defaults(BehaviorVersion::latest()).load().await, timeout)
}

/// `base` with `timeout` per call, and what a hand-built config (a test's) may lack.
pub fn with_timeout(base: SdkConfig, timeout: Duration) -> SdkConfig {
    let timeouts = base.timeout_config().cloned().unwrap_or_else(TimeoutConfig::disabled);
    let mut b = base.to_builder();
    b.set_timeout_config(Some(timeouts.to_builder().operation_timeout(timeout).build()));
    if base.behavior_version().is_none() {
        b.set_behavior_version(Some(BehaviorVersion::latest()));
    }
    // AssumeRoleProvider needs a clock.
    if base.time_source().is_none() {
        b.set_time_source(Some(Default::default()));
    }
    b.build()
}

/// `base` in `region`, acting through `role_arn` when there is one. `session` names the
/// session in the member account's CloudTrail, so that its owners can tell sgdrift's reads
/// (`sgdrift`), look-ups (`sgdrift-events`) and writes (`sgdrift-fix`) apart.
pub async fn scoped(base: &SdkConfig, region: &str, role_arn: Option<&str>, session: &str) -> SdkConfig {
    let region = Region::new(region.to_string());
    let mut conf = base.to_builder().region(region.clone());
    if let Some(role) = role_arn {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name(session)
            .region(region)
            .configure(base)
            .build()
            .await;
        conf = conf.credentials_provider(SharedCredentialsProvider::new(provider));
    }
    conf.build()
}
