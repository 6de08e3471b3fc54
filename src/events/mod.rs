//! The change feed of design.md §2 `events`: CloudTrail `AWS API Call` events that EventBridge
//! puts on an SQS queue trigger an immediate re-poll of the clusters whose security groups they
//! name, and say who made the change (`changed_by`); without a matching event, CloudTrail
//! `LookupEvents` is asked for the actor of a new finding.
//!
//! - [`cloudtrail`]: pure parsing of the events (EventBridge envelope, CloudTrail record).

pub mod cloudtrail;
