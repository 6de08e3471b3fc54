//! The change feed of design.md §2 `events`: CloudTrail `AWS API Call` events that EventBridge
//! puts on an SQS queue trigger an immediate re-poll of the clusters whose security groups they
//! name, and say who made the change (`changed_by`); without a matching event, CloudTrail
//! `LookupEvents` is asked for the actor of a new finding.
//!
//! - [`cloudtrail`]: pure parsing of the events (EventBridge envelope, CloudTrail record).
//! - [`matching`]: pure: the clusters a change concerns, the change that explains a finding.
//! - [`attribution`]: `changed_by` for the new findings of each poll.
//! - [`feed`]: the SQS loop (receive, coalesce, poll now, delete once recorded).
//! - [`aws`]: the SDK edge (SQS, CloudTrail), counted in the AWS call metrics.

pub mod attribution;
pub mod aws;
pub mod cloudtrail;
pub mod feed;
pub mod matching;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Attribution as Mode, Config, SourceKind};
use crate::export::metrics::Metrics;
use crate::scheduler::Trigger;
use crate::state::StateStore;

pub use attribution::Attribution;
pub use feed::Feed;

/// What `[events]` starts: the attribution every poll goes through, and the feed when a queue
/// is configured. `None` without `[events]`.
pub struct Events {
    pub attribution: Arc<Attribution>,
    pub feed: Option<Feed>,
}

impl Events {
    /// Builds both from the config; AWS clients from the standard chain. CloudTrail is asked
    /// only with `attribution = "cloudtrail"` and the `aws` source (the files source has no
    /// account to ask).
    pub async fn from_config(
        config: &Config,
        metrics: &Arc<Metrics>,
        store: &Arc<StateStore>,
        trigger: Trigger,
    ) -> Option<Events> {
        config.events.as_ref()?;
        let base = crate::source::session::load(config.poll.timeout).await;
        Some(Events::with_sdk_config(config, base, metrics, store, trigger))
    }

    /// As [`from_config`](Self::from_config), from an SDK config built elsewhere (tests).
    pub fn with_sdk_config(
        config: &Config,
        base: aws_config::SdkConfig,
        metrics: &Arc<Metrics>,
        store: &Arc<StateStore>,
        trigger: Trigger,
    ) -> Events {
        let events = config.events.clone().unwrap_or_else(|| crate::config::EventsConfig {
            queue_url: None,
            attribution: Mode::Off,
            coalesce: Duration::from_millis(500),
        });
        let base = crate::source::session::with_timeout(base, config.poll.timeout);
        let calls = metrics.aws_calls.clone();
        let trail = (events.attribution == Mode::Cloudtrail && config.source.kind == SourceKind::Aws)
            .then(|| aws::CloudTrail::new(base.clone(), calls.clone(), config.poll.timeout));
        let attribution = Arc::new(Attribution::new(trail));
        let feed = events.queue_url.as_ref().map(|url| Feed {
            queue: aws::Queue::new(&base, url, events.queue_region(), calls.clone(), config.poll.timeout),
            trigger,
            store: Arc::clone(store),
            metrics: Arc::clone(metrics),
            attribution: Arc::clone(&attribution),
            coalesce: events.coalesce,
            // A re-poll may wait for the target's poll in flight and a permit of the cap.
            repoll_bound: config.poll.timeout * 3 + events.coalesce,
        });
        Events { attribution, feed }
    }
}
