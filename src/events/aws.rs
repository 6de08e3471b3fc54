//! The SDK edge of the change feed: SQS `ReceiveMessage`, `DeleteMessageBatch` and
//! `GetQueueAttributes` on the queue, CloudTrail `LookupEvents` in each target's account and
//! region. Every call is timed and counted in the AWS call metrics; SDK types stay in this file.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use crate::source::session;
use aws_config::{Region, SdkConfig};
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use crate::source::convert::Operation;
use crate::source::{AwsCallMetrics, SourceError};

const RECEIVE_MESSAGE: Operation = Operation::new("sqs", "ReceiveMessage");
const DELETE_MESSAGE_BATCH: Operation = Operation::new("sqs", "DeleteMessageBatch");
const GET_QUEUE_ATTRIBUTES: Operation = Operation::new("sqs", "GetQueueAttributes");
const LOOKUP_EVENTS: Operation = Operation::new("cloudtrail", "LookupEvents");

/// SQS's longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS takes at most 10 messages per receive and per delete batch.
pub const BATCH: usize = 10;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// What deletes it; valid until its visibility timeout ends.
    pub receipt: String,
    pub body: String,
}

/// Times, counts and classifies one call (`AwsCallMetrics::timed`).
async fn call<T, E>(
    calls: &AwsCallMetrics,
    op: Operation,
    timeout: Duration,
    fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, SourceError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    calls.timed(op, timeout, fut).await.map_err(|f| f.error)
}

/// The queue EventBridge fills.
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
    calls: AwsCallMetrics,
    timeout: Duration,
}

impl Queue {
    /// The queue at `url`, in `region` when the URL names one (else the config's own).
    pub fn new(base: &SdkConfig, url: &str, region: Option<String>, calls: AwsCallMetrics, timeout: Duration) -> Queue {
        // A long poll holds the call open up to 20 s: the per-call timeout comes on top of it.
        let mut conf = session::with_timeout(base.clone(), timeout + MAX_WAIT).to_builder();
        if let Some(r) = region {
            conf = conf.region(Region::new(r));
        }
        Queue { client: aws_sdk_sqs::Client::new(&conf.build()), url: url.to_string(), calls, timeout }
    }

    /// Up to 10 messages, waiting up to `wait` (whole seconds, at most 20) for the first;
    /// received messages stay invisible to others for `visibility`.
    pub async fn receive(&self, wait: Duration, visibility: Duration) -> Result<Vec<Message>, SourceError> {
        let request = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(BATCH as i32)
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .visibility_timeout(visibility.as_secs().clamp(1, 43_200) as i32);
        let out = call(&self.calls, RECEIVE_MESSAGE, self.timeout + MAX_WAIT, request.send()).await?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Message {
                    id: m.message_id()?.to_string(),
                    receipt: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    /// Deletes `messages`, 10 per call. Returns the ids SQS did not delete.
    pub async fn delete(&self, messages: &[&Message]) -> Result<Vec<String>, SourceError> {
        let mut failed = Vec::new();
        for chunk in messages.chunks(BATCH) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(&m.receipt).build().ok()
                })
                .collect();
            let request = self.client.delete_message_batch().queue_url(&self.url).set_entries(Some(entries));
            let out = call(&self.calls, DELETE_MESSAGE_BATCH, self.timeout, request.send()).await?;
            for f in out.failed() {
                if let Some(m) = f.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                    failed.push(m.id.clone());
                }
            }
        }
        Ok(failed)
    }

    /// Whether the queue has a dead-letter queue (`RedrivePolicy`), asked once at start: it
    /// proves the queue is reachable and says where messages sgdrift cannot delete end up.
    pub async fn has_dead_letter_queue(&self) -> Result<bool, SourceError> {
        let request =
            self.client.get_queue_attributes().queue_url(&self.url).attribute_names(QueueAttributeName::RedrivePolicy);
        let out = call(&self.calls, GET_QUEUE_ATTRIBUTES, self.timeout, request.send()).await?;
        Ok(out.attributes().is_some_and(|a| a.contains_key(&QueueAttributeName::RedrivePolicy)))
    }
}

/// CloudTrail `LookupEvents` clients, one per (role, region) as the targets name them.
pub struct CloudTrail {
    base: SdkConfig,
    clients: tokio::sync::Mutex<HashMap<(Option<String>, String), aws_sdk_cloudtrail::Client>>,
    calls: AwsCallMetrics,
    timeout: Duration,
}

impl CloudTrail {
    pub fn new(base: SdkConfig, calls: AwsCallMetrics, timeout: Duration) -> CloudTrail {
        CloudTrail { base, clients: tokio::sync::Mutex::new(HashMap::new()), calls, timeout }
    }

    async fn client(&self, role_arn: Option<&str>, region: &str) -> aws_sdk_cloudtrail::Client {
        let key = (role_arn.map(str::to_string), region.to_string());
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        let conf = session::scoped(&self.base, region, role_arn, "sgdrift-events").await;
        let client = aws_sdk_cloudtrail::Client::new(&conf);
        clients.insert(key, client.clone());
        client
    }

    /// The records (`CloudTrailEvent` JSON) of the last 50 management events on `group` since
    /// `since`, newest first.
    pub async fn lookup(
        &self,
        role_arn: Option<&str>,
        region: &str,
        group: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, SourceError> {
        let client = self.client(role_arn, region).await;
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::ResourceName)
            .attribute_value(group)
            .build()
            .map_err(|e| SourceError::Client { operation: LOOKUP_EVENTS.action(), message: e.to_string() })?;
        let request = client
            .lookup_events()
            .lookup_attributes(attribute)
            .start_time(aws_smithy_types::DateTime::from_secs(since.timestamp()))
            .max_results(50);
        let out = call(&self.calls, LOOKUP_EVENTS, self.timeout, request.send()).await?;
        Ok(out.events().iter().filter_map(|e| e.cloud_trail_event().map(str::to_string)).collect())
    }
}
