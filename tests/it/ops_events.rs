//! The change feed's deploy artefacts agree with the code: the EventBridge rules of
//! deploy/events/sgdrift-events.json match exactly the CloudTrail calls sgdrift acts on
//! (`events::cloudtrail::CHANGES`), on the detail-type it parses, and the queue has a
//! dead-letter queue and a visibility timeout longer than a long poll.

use crate::ops_common as common;

use std::collections::BTreeSet;

use sgdrift::events::cloudtrail::{API_CALL, CHANGES};

fn strings(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array().expect("a list").iter().map(|s| s.as_str().expect("a string").to_string()).collect()
}

#[test]
fn both_rules_match_exactly_the_calls_sgdrift_acts_on() {
    let template = common::read_json("deploy/events/sgdrift-events.json");
    let want: BTreeSet<String> = CHANGES.iter().map(|(_, name, _)| name.to_string()).collect();
    let sources: BTreeSet<String> = CHANGES.iter().map(|(source, _, _)| source.to_string()).collect();
    for rule in ["HubRule", "MemberRule"] {
        let pattern = &template["Resources"][rule]["Properties"]["EventPattern"];
        assert_eq!(strings(&pattern["detail"]["eventName"]), want, "{rule}: eventName");
        assert_eq!(strings(&pattern["detail"]["eventSource"]), sources, "{rule}: eventSource");
        assert_eq!(strings(&pattern["detail-type"]), BTreeSet::from([API_CALL.to_string()]), "{rule}: detail-type");
    }
}

#[test]
fn the_queue_has_a_dead_letter_queue_and_outlasts_a_long_poll() {
    let template = common::read_json("deploy/events/sgdrift-events.json");
    let queue = &template["Resources"]["Queue"]["Properties"];
    assert_eq!(queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0], "DeadLetterQueue");
    assert!(
        queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() >= 3,
        "a message is retried before it is moved aside"
    );
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() > 20);
    let target = &template["Resources"]["HubRule"]["Properties"]["Targets"][0];
    assert_eq!(target["Arn"]["Fn::GetAtt"][0], "Queue");
    let member = &template["Resources"]["MemberRule"]["Properties"]["Targets"][0];
    assert!(member["RoleArn"].is_object(), "a cross-account bus target needs a role");
}
