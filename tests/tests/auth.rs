//! Authentication and ACLs against the real binary: every RPC of every
//! service is refused without credentials, refused without the ACL it
//! needs, and answered once that ACL exists; deny wins; tokens reload on
//! SIGHUP; client certificates name principals; /metrics can need a token.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use brook_protocol::v1;
use brook_tests::{Broker, batch_of, brook_binary, eventually, http_get};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// `brook token create` for `principal` into `file`; returns the token.
fn token(principal: &str, file: &Path) -> String {
    brook_tests::create_token(principal, file)
}

/// `msg` carrying `token`, if any.
fn req<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

fn acl(
    principal: &str,
    permission: v1::AclPermission,
    op: v1::AclOperation,
    rt: v1::ResourceType,
    name: &str,
) -> v1::AclBinding {
    v1::AclBinding {
        principal: principal.into(),
        permission: permission as i32,
        operation: op as i32,
        resource_type: rt as i32,
        pattern_type: v1::PatternType::Literal as i32,
        resource_name: name.into(),
    }
}

fn allow(op: v1::AclOperation, rt: v1::ResourceType, name: &str) -> v1::AclBinding {
    acl("alice", v1::AclPermission::Allow, op, rt, name)
}

use v1::AclOperation as Op;
use v1::ResourceType as Rt;

/// Every RPC, and the ACLs alice needs for the call [`call`] makes.
fn cases() -> Vec<(&'static str, Vec<v1::AclBinding>)> {
    vec![
        (
            "/brook.v1.Topics/CreateTopic",
            vec![allow(Op::Create, Rt::Topic, "t-new")],
        ),
        (
            "/brook.v1.Topics/DeleteTopic",
            vec![allow(Op::Delete, Rt::Topic, "t-del")],
        ),
        (
            "/brook.v1.Topics/ListTopics",
            vec![allow(Op::Describe, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Topics/DescribeTopic",
            vec![allow(Op::Describe, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Topics/AddPartitions",
            vec![allow(Op::Alter, Rt::Topic, "t-grow")],
        ),
        (
            "/brook.v1.Topics/AlterTopic",
            vec![allow(Op::Alter, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Producer/Produce",
            vec![allow(Op::Write, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Producer/ProduceStream",
            vec![allow(Op::Write, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Producer/Publish",
            vec![allow(Op::Write, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Producer/InitProducer",
            vec![allow(Op::Write, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Consumer/Fetch",
            vec![allow(Op::Read, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Consumer/Subscribe",
            vec![allow(Op::Read, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Groups/Join",
            vec![
                allow(Op::Read, Rt::Group, "g-join"),
                allow(Op::Describe, Rt::Topic, "t"),
            ],
        ),
        (
            "/brook.v1.Groups/Commit",
            vec![
                allow(Op::Commit, Rt::Group, "g"),
                allow(Op::Read, Rt::Topic, "t"),
            ],
        ),
        (
            "/brook.v1.Groups/FetchCommitted",
            vec![allow(Op::Describe, Rt::Group, "g")],
        ),
        (
            "/brook.v1.Groups/ListGroups",
            vec![allow(Op::Describe, Rt::Group, "g")],
        ),
        (
            "/brook.v1.Groups/DescribeGroup",
            vec![allow(Op::Describe, Rt::Group, "g")],
        ),
        (
            "/brook.v1.Groups/DeleteGroup",
            vec![allow(Op::Delete, Rt::Group, "g-del")],
        ),
        (
            "/brook.v1.Groups/GetConsumerLag",
            vec![allow(Op::Describe, Rt::Group, "g")],
        ),
        (
            "/brook.v1.Groups/ResetOffsets",
            vec![
                allow(Op::Alter, Rt::Group, "g"),
                allow(Op::Read, Rt::Topic, "t"),
            ],
        ),
        (
            "/brook.v1.Queues/CreateQueue",
            vec![
                allow(Op::Read, Rt::Group, "q-new"),
                allow(Op::Read, Rt::Topic, "t"),
            ],
        ),
        (
            "/brook.v1.Queues/AlterQueue",
            vec![allow(Op::Alter, Rt::Group, "q")],
        ),
        (
            "/brook.v1.Queues/DeleteQueue",
            vec![allow(Op::Delete, Rt::Group, "q-del")],
        ),
        (
            "/brook.v1.Queues/FetchQueue",
            vec![
                allow(Op::Read, Rt::Group, "q"),
                allow(Op::Read, Rt::Topic, "t"),
            ],
        ),
        (
            "/brook.v1.Queues/Acknowledge",
            vec![
                allow(Op::Read, Rt::Group, "q"),
                allow(Op::Read, Rt::Topic, "t"),
            ],
        ),
        (
            "/brook.v1.Queues/ExtendLease",
            vec![
                allow(Op::Read, Rt::Group, "q"),
                allow(Op::Read, Rt::Topic, "t"),
            ],
        ),
        (
            "/brook.v1.Queues/DescribeQueue",
            vec![allow(Op::Describe, Rt::Group, "q")],
        ),
        (
            "/brook.v1.Queues/ListQueues",
            vec![allow(Op::Describe, Rt::Group, "q")],
        ),
        (
            "/brook.v1.Queues/Redrive",
            vec![
                allow(Op::Alter, Rt::Group, "q"),
                allow(Op::Write, Rt::Topic, "t"),
                allow(Op::Read, Rt::Topic, "t.q.dlq"),
            ],
        ),
        (
            "/brook.v1.Cluster/DescribeCluster",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Acls/CreateAcls",
            vec![allow(Op::Alter, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Acls/ListAcls",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Acls/DeleteAcls",
            vec![allow(Op::Alter, Rt::Cluster, "brook")],
        ),
        // Asks nothing of the ACLs: anyone authenticated may learn who they are.
        ("/brook.v1.Acls/WhoAmI", vec![]),
        // The schema registry: describe the cluster to read, alter it to change.
        (
            "/brook.v1.Schemas/RegisterSchema",
            vec![allow(Op::Alter, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/ListSubjects",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/ListVersions",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/GetSchemaVersion",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/GetSchemaById",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/CheckCompatibility",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/DeleteSchema",
            vec![allow(Op::Alter, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/GetCompatibility",
            vec![allow(Op::Describe, Rt::Cluster, "brook")],
        ),
        (
            "/brook.v1.Schemas/SetCompatibility",
            vec![allow(Op::Alter, Rt::Cluster, "brook")],
        ),
        // A topic's binding is the topic's: no access to the registry needed.
        (
            "/brook.v1.Schemas/SetTopicSchema",
            vec![allow(Op::Alter, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Schemas/GetTopicSchema",
            vec![allow(Op::Describe, Rt::Topic, "t")],
        ),
        // Rules are their source topic's: they read it and write their
        // targets with the broker's authority once created.
        (
            "/brook.v1.Rules/CreateRule",
            vec![
                allow(Op::Alter, Rt::Topic, "t"),
                allow(Op::Read, Rt::Topic, "t"),
                allow(Op::Write, Rt::Topic, "t-out"),
            ],
        ),
        (
            "/brook.v1.Rules/DescribeRule",
            vec![allow(Op::Describe, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Rules/ListRules",
            vec![allow(Op::Describe, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Rules/PauseRule",
            vec![allow(Op::Alter, Rt::Topic, "t")],
        ),
        (
            "/brook.v1.Rules/ResumeRule",
            vec![allow(Op::Alter, Rt::Topic, "t")],
        ),
        // Once deleted, the rule is unknown: the deny call is refused for
        // want of DESCRIBE on the cluster, which says whether it exists.
        (
            "/brook.v1.Rules/DeleteRule",
            vec![allow(Op::Alter, Rt::Topic, "t")],
        ),
    ]
}

/// Every `/package.Service/Method` of the brook protos.
fn every_rpc() -> BTreeSet<String> {
    use prost::Message;
    let fds = prost_types::FileDescriptorSet::decode(v1::FILE_DESCRIPTOR_SET).unwrap();
    fds.file
        .iter()
        .flat_map(|f| {
            f.service.iter().flat_map(move |s| {
                s.method
                    .iter()
                    .map(move |m| format!("/{}.{}/{}", f.package(), s.name(), m.name()))
            })
        })
        .collect()
}

/// Calls `path` as the bearer of `token`. For the list methods, a call
/// that hides the resource counts as PERMISSION_DENIED: the caller may not
/// see it, which is what listing filtered by ACL means.
async fn call(ch: &Channel, path: &str, token: Option<&str>) -> Result<(), Status> {
    let hidden = || Status::permission_denied("not listed");
    let mut topics = v1::topics_client::TopicsClient::new(ch.clone());
    let mut producer = v1::producer_client::ProducerClient::new(ch.clone());
    let mut consumer = v1::consumer_client::ConsumerClient::new(ch.clone());
    let mut groups = v1::groups_client::GroupsClient::new(ch.clone());
    let mut cluster = v1::cluster_client::ClusterClient::new(ch.clone());
    let mut acls = v1::acls_client::AclsClient::new(ch.clone());
    let mut queues = v1::queues_client::QueuesClient::new(ch.clone());
    let mut schemas = v1::schemas_client::SchemasClient::new(ch.clone());
    let mut rules = v1::rules_client::RulesClient::new(ch.clone());
    let string_schema = |subject: &str| v1::RegisterSchemaRequest {
        subject: subject.into(),
        schema: r#"{"type":"string"}"#.into(),
        schema_type: "JSON".into(),
    };
    let produce = || v1::ProduceRequest {
        topic: "t".into(),
        partition: 0,
        batch: batch_of(Some(b"k"), &[b"v"]).into_bytes(),
        acks: 0,
    };
    let nobody = acl("nobody", v1::AclPermission::Allow, Op::Read, Rt::Topic, "x");
    match path.rsplit('/').next().unwrap() {
        "CreateTopic" => {
            let config = Some(v1::TopicConfig {
                partitions: 1,
                ..Default::default()
            });
            let r = v1::CreateTopicRequest {
                name: "t-new".into(),
                config,
            };
            topics.create_topic(req(r, token)).await.map(drop)
        }
        "DeleteTopic" => {
            let r = v1::DeleteTopicRequest {
                name: "t-del".into(),
            };
            topics.delete_topic(req(r, token)).await.map(drop)
        }
        "ListTopics" => {
            let listed = topics
                .list_topics(req(v1::ListTopicsRequest {}, token))
                .await?;
            match listed.into_inner().topics.iter().any(|t| t.name == "t") {
                true => Ok(()),
                false => Err(hidden()),
            }
        }
        "DescribeTopic" => {
            let r = v1::DescribeTopicRequest { name: "t".into() };
            topics.describe_topic(req(r, token)).await.map(drop)
        }
        "AddPartitions" => {
            let r = v1::AddPartitionsRequest {
                name: "t-grow".into(),
                partitions: 2,
            };
            topics.add_partitions(req(r, token)).await.map(drop)
        }
        "AlterTopic" => {
            let r = v1::AlterTopicRequest {
                name: "t".into(),
                config: Some(v1::TopicConfig {
                    retention_ms: Some(-1),
                    ..Default::default()
                }),
            };
            topics.alter_topic(req(r, token)).await.map(drop)
        }
        "Produce" => producer.produce(req(produce(), token)).await.map(drop),
        "ProduceStream" => {
            let stream = tokio_stream::iter(vec![produce()]);
            let mut acks = producer
                .produce_stream(req(stream, token))
                .await?
                .into_inner();
            acks.next().await.expect("an ack or a status").map(drop)
        }
        "Publish" => {
            let r = v1::PublishRequest {
                topic: "t".into(),
                records: vec![v1::PublishRecord {
                    value: Some(b"v".to_vec().into()),
                    ..Default::default()
                }],
                acks: 0,
            };
            producer.publish(req(r, token)).await.map(drop)
        }
        "InitProducer" => producer
            .init_producer(req(v1::InitProducerRequest {}, token))
            .await
            .map(drop),
        "Fetch" => {
            let r = v1::FetchRequest {
                topic: "t".into(),
                max_bytes: 1 << 20,
                ..Default::default()
            };
            consumer.fetch(req(r, token)).await.map(drop)
        }
        "Subscribe" => {
            let r = v1::SubscribeRequest {
                topic: "t".into(),
                start: Some(v1::StartPosition {
                    position: Some(v1::start_position::Position::Earliest(v1::Earliest {})),
                }),
                ..Default::default()
            };
            let mut s = consumer.subscribe(req(r, token)).await?.into_inner();
            s.next().await.expect("records").map(drop)
        }
        "Join" => {
            let join = v1::JoinMessage {
                message: Some(v1::join_message::Message::Join(v1::JoinGroup {
                    group: "g-join".into(),
                    topics: vec!["t".into()],
                    ..Default::default()
                })),
            };
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(join).await.unwrap();
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            let mut events = groups.join(req(stream, token)).await?.into_inner();
            let first = events.next().await.expect("an event or a status").map(drop);
            drop(tx);
            first
        }
        "Commit" => {
            let r = v1::CommitRequest {
                group: "g".into(),
                offsets: vec![v1::OffsetCommit {
                    topic: "t".into(),
                    partition: 0,
                    offset: 1,
                    ..Default::default()
                }],
                ..Default::default()
            };
            groups.commit(req(r, token)).await.map(drop)
        }
        "FetchCommitted" => {
            let r = v1::FetchCommittedRequest {
                group: "g".into(),
                topic: String::new(),
            };
            groups.fetch_committed(req(r, token)).await.map(drop)
        }
        "ListGroups" => {
            let listed = groups
                .list_groups(req(v1::ListGroupsRequest {}, token))
                .await?;
            match listed.into_inner().groups.iter().any(|g| g.group == "g") {
                true => Ok(()),
                false => Err(hidden()),
            }
        }
        "DescribeGroup" => {
            let r = v1::DescribeGroupRequest { group: "g".into() };
            groups.describe_group(req(r, token)).await.map(drop)
        }
        "DeleteGroup" => {
            let r = v1::DeleteGroupRequest {
                group: "g-del".into(),
            };
            groups.delete_group(req(r, token)).await.map(drop)
        }
        "GetConsumerLag" => {
            let r = v1::GetConsumerLagRequest {
                group: "g".into(),
                topic: String::new(),
            };
            groups.get_consumer_lag(req(r, token)).await.map(drop)
        }
        "ResetOffsets" => {
            let r = v1::ResetOffsetsRequest {
                group: "g".into(),
                topic: "t".into(),
                to: Some(v1::reset_offsets_request::To::Earliest(v1::Earliest {})),
                ..Default::default()
            };
            groups.reset_offsets(req(r, token)).await.map(drop)
        }
        "CreateQueue" => {
            let r = v1::CreateQueueRequest {
                group: "q-new".into(),
                topic: "t".into(),
                ..Default::default()
            };
            queues.create_queue(req(r, token)).await.map(drop)
        }
        "AlterQueue" => {
            let r = v1::AlterQueueRequest {
                group: "q".into(),
                settings: Some(v1::QueueSettings {
                    lease_ms: Some(20_000),
                    ..Default::default()
                }),
            };
            queues.alter_queue(req(r, token)).await.map(drop)
        }
        "DeleteQueue" => {
            let r = v1::DeleteQueueRequest {
                group: "q-del".into(),
            };
            queues.delete_queue(req(r, token)).await.map(drop)
        }
        "FetchQueue" => {
            let r = v1::FetchQueueRequest {
                group: "q".into(),
                consumer_id: "alice-1".into(),
                ..Default::default()
            };
            queues.fetch_queue(req(r, token)).await.map(drop)
        }
        "Acknowledge" => {
            let r = v1::AcknowledgeRequest {
                group: "q".into(),
                consumer_id: "alice-1".into(),
                acks: vec![v1::Acknowledgement {
                    partition: 0,
                    first_offset: 0,
                    last_offset: 0,
                    ..Default::default()
                }],
            };
            queues.acknowledge(req(r, token)).await.map(drop)
        }
        "ExtendLease" => {
            let r = v1::ExtendLeaseRequest {
                group: "q".into(),
                consumer_id: "alice-1".into(),
                ranges: vec![v1::OffsetRange::default()],
                lease_ms: 0,
            };
            queues.extend_lease(req(r, token)).await.map(drop)
        }
        "DescribeQueue" => {
            let r = v1::DescribeQueueRequest { group: "q".into() };
            queues.describe_queue(req(r, token)).await.map(drop)
        }
        "ListQueues" => {
            let listed = queues
                .list_queues(req(v1::ListQueuesRequest {}, token))
                .await?;
            match listed.into_inner().queues.iter().any(|q| q.group == "q") {
                true => Ok(()),
                false => Err(hidden()),
            }
        }
        "Redrive" => {
            let r = v1::RedriveRequest {
                group: "q".into(),
                ..Default::default()
            };
            queues.redrive(req(r, token)).await.map(drop)
        }
        "DescribeCluster" => cluster
            .describe_cluster(req(v1::DescribeClusterRequest {}, token))
            .await
            .map(drop),
        "CreateAcls" => {
            let r = v1::CreateAclsRequest { acls: vec![nobody] };
            acls.create_acls(req(r, token)).await.map(drop)
        }
        "ListAcls" => acls
            .list_acls(req(v1::ListAclsRequest::default(), token))
            .await
            .map(drop),
        "DeleteAcls" => {
            let r = v1::DeleteAclsRequest { acls: vec![nobody] };
            acls.delete_acls(req(r, token)).await.map(drop)
        }
        "WhoAmI" => acls
            .who_am_i(req(v1::WhoAmIRequest {}, token))
            .await
            .map(drop),
        "RegisterSchema" => schemas
            .register_schema(req(string_schema("s"), token))
            .await
            .map(drop),
        "ListSubjects" => schemas
            .list_subjects(req(v1::ListSubjectsRequest::default(), token))
            .await
            .map(drop),
        "ListVersions" => {
            let r = v1::ListVersionsRequest {
                subject: "s".into(),
                include_deleted: false,
            };
            schemas.list_versions(req(r, token)).await.map(drop)
        }
        "GetSchemaVersion" => {
            let r = v1::GetSchemaVersionRequest {
                subject: "s".into(),
                ..Default::default()
            };
            schemas.get_schema_version(req(r, token)).await.map(drop)
        }
        "GetSchemaById" => schemas
            .get_schema_by_id(req(v1::GetSchemaByIdRequest { id: 1 }, token))
            .await
            .map(drop),
        "CheckCompatibility" => {
            let r = v1::CheckCompatibilityRequest {
                subject: "s".into(),
                schema: r#"{"type":"string","maxLength":3}"#.into(),
                schema_type: "JSON".into(),
                version: 0,
            };
            schemas.check_compatibility(req(r, token)).await.map(drop)
        }
        "DeleteSchema" => {
            let r = v1::DeleteSchemaRequest {
                subject: "s-del".into(),
                ..Default::default()
            };
            schemas.delete_schema(req(r, token)).await.map(drop)
        }
        "GetCompatibility" => schemas
            .get_compatibility(req(v1::GetCompatibilityRequest::default(), token))
            .await
            .map(drop),
        "SetCompatibility" => {
            let r = v1::SetCompatibilityRequest {
                subject: "s".into(),
                level: "FULL".into(),
            };
            schemas.set_compatibility(req(r, token)).await.map(drop)
        }
        "SetTopicSchema" => {
            let r = v1::TopicSchema {
                topic: "t".into(),
                value_subject: "s".into(),
                mode: "off".into(),
                ..Default::default()
            };
            schemas.set_topic_schema(req(r, token)).await.map(drop)
        }
        "GetTopicSchema" => {
            let r = v1::GetTopicSchemaRequest { topic: "t".into() };
            schemas.get_topic_schema(req(r, token)).await.map(drop)
        }
        "CreateRule" => rules
            .create_rule(req(rule_request("r-new"), token))
            .await
            .map(drop),
        "DescribeRule" => {
            let r = v1::DescribeRuleRequest { name: "r".into() };
            rules.describe_rule(req(r, token)).await.map(drop)
        }
        "ListRules" => {
            let listed = rules
                .list_rules(req(v1::ListRulesRequest::default(), token))
                .await?;
            match listed
                .into_inner()
                .rules
                .iter()
                .any(|r| r.rule.as_ref().is_some_and(|d| d.name == "r"))
            {
                true => Ok(()),
                false => Err(hidden()),
            }
        }
        "PauseRule" => {
            let r = v1::PauseRuleRequest { name: "r".into() };
            rules.pause_rule(req(r, token)).await.map(drop)
        }
        "ResumeRule" => {
            let r = v1::ResumeRuleRequest { name: "r".into() };
            rules.resume_rule(req(r, token)).await.map(drop)
        }
        "DeleteRule" => {
            let r = v1::DeleteRuleRequest {
                name: "r-del".into(),
            };
            rules.delete_rule(req(r, token)).await.map(drop)
        }
        other => panic!("no test call for {other}: add one to cases() and call()"),
    }
}

/// A broker with --auth required, its tokens file and the admin's token.
struct Secured {
    broker: Broker,
    tokens: std::path::PathBuf,
    admin: String,
    /// The broker's log (stderr).
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Secured {
    /// Sends SIGHUP and waits until the broker has read the tokens file
    /// (the `n`th reload line of its log, ok or refused).
    async fn reload(&self, n: usize) {
        self.broker.signal(libc::SIGHUP);
        brook_tests::eventually("the tokens file to be read again", async || {
            std::fs::read_to_string(&self.log).is_ok_and(|l| {
                l.matches("tokens file reloaded").count()
                    + l.matches("tokens file not reloaded").count()
                    >= n
            })
        })
        .await;
    }
}

async fn secured(extra: &[&str]) -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let admin = token("admin", &tokens);
    let data = dir.path().join("data");
    let mut flags = vec![
        "--auth",
        "required",
        "--tokens-file",
        tokens.to_str().unwrap(),
        "--super-users",
        "admin",
    ];
    flags.extend_from_slice(extra);
    let log = dir.path().join("broker.log");
    let broker = Broker::spawn_logged(&data, &flags, &log);
    broker.wait_serving().await;
    Secured {
        broker,
        tokens,
        admin,
        log,
        _dir: dir,
    }
}

async fn set_acls(ch: &Channel, admin: &str, acls: Vec<v1::AclBinding>, add: bool) {
    if acls.is_empty() {
        return;
    }
    let mut client = v1::acls_client::AclsClient::new(ch.clone());
    match add {
        true => drop(
            client
                .create_acls(req(v1::CreateAclsRequest { acls }, Some(admin)))
                .await
                .unwrap(),
        ),
        false => drop(
            client
                .delete_acls(req(v1::DeleteAclsRequest { acls }, Some(admin)))
                .await
                .unwrap(),
        ),
    }
}

/// A rule on `t` writing what matches to `t-out`.
fn rule_request(name: &str) -> v1::CreateRuleRequest {
    v1::CreateRuleRequest {
        rule: Some(v1::RuleDefinition {
            name: name.into(),
            source_topic: "t".into(),
            event_pattern: r#"{"type":["OrderPlaced"]}"#.into(),
            targets: vec!["t-out".into()],
            ..Default::default()
        }),
    }
}

/// What the cases act on, made by the super user.
async fn setup(ch: &Channel, admin: &str) {
    let mut topics = v1::topics_client::TopicsClient::new(ch.clone());
    for name in ["t", "t-del", "t-grow", "t-out"] {
        let r = v1::CreateTopicRequest {
            name: name.into(),
            config: Some(v1::TopicConfig {
                partitions: 1,
                ..Default::default()
            }),
        };
        topics.create_topic(req(r, Some(admin))).await.unwrap();
    }
    call(ch, "/brook.v1.Producer/Produce", Some(admin))
        .await
        .unwrap();
    let mut groups = v1::groups_client::GroupsClient::new(ch.clone());
    for group in ["g", "g-del"] {
        let r = v1::CommitRequest {
            group: group.into(),
            offsets: vec![v1::OffsetCommit {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                ..Default::default()
            }],
            ..Default::default()
        };
        groups.commit(req(r, Some(admin))).await.unwrap();
    }
    let mut queues = v1::queues_client::QueuesClient::new(ch.clone());
    for group in ["q", "q-del"] {
        let r = v1::CreateQueueRequest {
            group: group.into(),
            topic: "t".into(),
            start: v1::QueueStart::Earliest as i32,
            ..Default::default()
        };
        queues.create_queue(req(r, Some(admin))).await.unwrap();
    }
    let mut schemas = v1::schemas_client::SchemasClient::new(ch.clone());
    for subject in ["s", "s-del"] {
        let r = v1::RegisterSchemaRequest {
            subject: subject.into(),
            schema: r#"{"type":"string"}"#.into(),
            schema_type: "JSON".into(),
        };
        schemas.register_schema(req(r, Some(admin))).await.unwrap();
    }
    let mut rules = v1::rules_client::RulesClient::new(ch.clone());
    for name in ["r", "r-del"] {
        let r = rule_request(name);
        rules.create_rule(req(r, Some(admin))).await.unwrap();
    }
}

/// The table covers every RPC; each is refused without credentials, refused
/// (PERMISSION_DENIED, reason NOT_AUTHORIZED) without its ACL, answered with
/// it, and refused again once a deny entry for the same thing is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_credentials_and_its_acl() {
    let s = secured(&[]).await;
    let alice = token("alice", &s.tokens);
    s.reload(1).await;
    let ch = s.broker.channel().await;
    setup(&ch, &s.admin).await;

    let table: BTreeSet<String> = cases().iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(table, every_rpc(), "every RPC needs a row in cases()");

    for (path, needs) in cases() {
        let anonymous = call(&ch, path, None).await.expect_err(path);
        assert_eq!(
            anonymous.code(),
            Code::Unauthenticated,
            "{path}: {anonymous:?}"
        );
        assert_eq!(
            brook_tests::reason(&anonymous).as_deref(),
            Some("NOT_AUTHENTICATED"),
            "{path}"
        );
        let forged = call(&ch, path, Some("brook_forged")).await.expect_err(path);
        assert_eq!(forged.code(), Code::Unauthenticated, "{path}: {forged:?}");
        if needs.is_empty() {
            call(&ch, path, Some(&alice)).await.unwrap();
            continue;
        }
        let denied = call(&ch, path, Some(&alice)).await.expect_err(path);
        assert_eq!(denied.code(), Code::PermissionDenied, "{path}: {denied:?}");
        if denied.message() != "not listed" {
            assert_eq!(
                brook_tests::reason(&denied).as_deref(),
                Some("NOT_AUTHORIZED"),
                "{path}"
            );
            assert_eq!(
                brook_tests::error_metadata(&denied, "principal").as_deref(),
                Some("alice")
            );
        }
        set_acls(&ch, &s.admin, needs.clone(), true).await;
        if let Err(e) = call(&ch, path, Some(&alice)).await {
            panic!("{path} with {needs:?}: {e:?}");
        }
        // Deny wins over the allow.
        let deny: Vec<_> = needs
            .iter()
            .map(|a| v1::AclBinding {
                permission: v1::AclPermission::Deny as i32,
                ..a.clone()
            })
            .collect();
        set_acls(&ch, &s.admin, deny.clone(), true).await;
        let denied = call(&ch, path, Some(&alice)).await.expect_err(path);
        assert_eq!(denied.code(), Code::PermissionDenied, "{path} with a deny");
        set_acls(&ch, &s.admin, deny, false).await;
        set_acls(&ch, &s.admin, needs, false).await;
    }
    // The health service stays open to probes.
    s.broker.wait_serving().await;
}

/// A rule name taken on a topic the caller may not see is not revealed:
/// CreateRule of that name from a topic the caller may use answers
/// PERMISSION_DENIED, as DescribeRule of it does; with DESCRIBE on the
/// other rule's source it answers RULE_EXISTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_rule_name_is_not_revealed_to_who_cannot_see_its_topic() {
    let s = secured(&[]).await;
    let alice = token("alice", &s.tokens);
    s.reload(1).await;
    let ch = s.broker.channel().await;
    setup(&ch, &s.admin).await;
    let mut rules = v1::rules_client::RulesClient::new(ch.clone());
    // Everything a rule from t-grow to t-out needs, nothing on t (rule r's source).
    let mine = vec![
        allow(Op::Alter, Rt::Topic, "t-grow"),
        allow(Op::Read, Rt::Topic, "t-grow"),
        allow(Op::Write, Rt::Topic, "t-out"),
    ];
    set_acls(&ch, &s.admin, mine, true).await;
    let taken = || {
        let mut r = rule_request("r");
        r.rule.as_mut().unwrap().source_topic = "t-grow".into();
        r
    };
    let hidden = rules
        .create_rule(req(taken(), Some(&alice)))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::PermissionDenied, "{hidden:?}");
    assert!(!hidden.message().contains("exists"), "{hidden:?}");
    let describe = v1::DescribeRuleRequest { name: "r".into() };
    let described = rules
        .describe_rule(req(describe, Some(&alice)))
        .await
        .unwrap_err();
    assert_eq!(described.code(), hidden.code());

    set_acls(
        &ch,
        &s.admin,
        vec![allow(Op::Describe, Rt::Topic, "t")],
        true,
    )
    .await;
    let exists = rules
        .create_rule(req(taken(), Some(&alice)))
        .await
        .unwrap_err();
    assert_eq!(exists.code(), Code::AlreadyExists, "{exists:?}");
    assert_eq!(brook_tests::reason(&exists).as_deref(), Some("RULE_EXISTS"));
}

/// Tokens added to or removed from the file take effect at SIGHUP; a file
/// broken meanwhile keeps the tokens in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_reload_on_sighup_and_a_broken_file_changes_nothing() {
    let s = secured(&[]).await;
    let ch = s.broker.channel().await;
    let whoami = "/brook.v1.Acls/WhoAmI";
    let bob = token("bob", &s.tokens);
    let refused = call(&ch, whoami, Some(&bob))
        .await
        .expect_err("not loaded yet");
    assert_eq!(refused.code(), Code::Unauthenticated);
    s.reload(1).await;
    call(&ch, whoami, Some(&bob)).await.unwrap();

    let good = std::fs::read_to_string(&s.tokens).unwrap();
    std::fs::write(&s.tokens, "[[tokens]]\nprincipal = ").unwrap();
    s.reload(2).await;
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(log.contains("tokens file not reloaded"), "{log}");
    // The broken file was refused: both tokens still work.
    call(&ch, whoami, Some(&bob)).await.unwrap();
    call(&ch, whoami, Some(&s.admin)).await.unwrap();
    // Revoking bob: the file without his entry.
    let admin_only: String = good
        .split("[[tokens]]")
        .nth(1)
        .map(|e| format!("[[tokens]]{e}"))
        .unwrap();
    std::fs::write(&s.tokens, admin_only).unwrap();
    s.reload(3).await;
    let revoked = call(&ch, whoami, Some(&bob)).await.expect_err("revoked");
    assert_eq!(revoked.code(), Code::Unauthenticated);
    call(&ch, whoami, Some(&s.admin)).await.unwrap();
}

/// An open subscription is checked at every message: it ends once its ACL
/// is removed, and once its token is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_subscription_ends_when_its_acl_or_token_goes() {
    let s = secured(&[]).await;
    let alice = token("alice", &s.tokens);
    s.reload(1).await;
    let ch = s.broker.channel().await;
    setup(&ch, &s.admin).await;
    let read_t = vec![allow(Op::Read, Rt::Topic, "t")];
    set_acls(&ch, &s.admin, read_t.clone(), true).await;
    let subscribe = || {
        let r = v1::SubscribeRequest {
            topic: "t".into(),
            start: Some(v1::StartPosition {
                position: Some(v1::start_position::Position::Earliest(v1::Earliest {})),
            }),
            ..Default::default()
        };
        let mut consumer = v1::consumer_client::ConsumerClient::new(ch.clone());
        let token = alice.clone();
        async move {
            consumer
                .subscribe(req(r, Some(&token)))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let produce = || call(&ch, "/brook.v1.Producer/Produce", Some(&s.admin));

    let mut stream = subscribe().await;
    stream.next().await.unwrap().unwrap();
    set_acls(&ch, &s.admin, read_t.clone(), false).await;
    produce().await.unwrap();
    let ended = stream
        .next()
        .await
        .expect("a status")
        .expect_err("no ACL any more");
    assert_eq!(ended.code(), Code::PermissionDenied, "{ended:?}");

    set_acls(&ch, &s.admin, read_t, true).await;
    let mut stream = subscribe().await;
    stream.next().await.unwrap().unwrap();
    let admin_only = format!(
        "{}\n",
        std::fs::read_to_string(&s.tokens)
            .unwrap()
            .split("[[tokens]]")
            .nth(1)
            .map(|e| format!("[[tokens]]{e}"))
            .unwrap()
    );
    std::fs::write(&s.tokens, admin_only).unwrap();
    s.reload(2).await;
    produce().await.unwrap();
    let ended = stream
        .next()
        .await
        .expect("a status")
        .expect_err("token revoked");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
}

/// With --auth off nobody is asked who they are, so nobody may change the
/// ACLs (they would take effect the day authentication is turned on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_cannot_be_changed_with_auth_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let ch = broker.channel().await;
    let e = call(&ch, "/brook.v1.Acls/CreateAcls", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    call(&ch, "/brook.v1.Acls/ListAcls", None).await.unwrap();
}

/// The CLI manages ACLs and asks who it is; the client library takes the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_acls_with_a_token() {
    let s = secured(&[]).await;
    let url = format!("http://{}", s.broker.grpc);
    let brook = |args: &[&str], token: &str| {
        Command::new(brook_binary())
            .args(args)
            .args(["--url", &url])
            .env("BROOK_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = brook(&["acl", "whoami"], &s.admin);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "admin (super user)\n");
    let shop = token("shop", &s.tokens);
    s.reload(1).await;
    let add = [
        "acl",
        "add",
        "--principal",
        "shop",
        "--producer",
        "--topic",
        "orders-",
        "--prefix",
    ];
    let out = brook(&add, &s.admin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = brook(&["acl", "list", "--principal", "shop", "--json"], &s.admin);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!([{"principal": "shop", "permission": "allow", "operation": "write",
            "resource_type": "topic", "pattern_type": "prefixed", "resource_name": "orders-"}])
    );
    // shop may not manage ACLs: exit 1, the reason on stderr.
    let out = brook(&add, &shop);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The producer's token writes to a matching topic through the client.
    let out = brook(&["topic", "create", "orders-eu"], &s.admin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = brook_client::Client::builder(url.clone())
        .token(shop.clone())
        .connect()
        .await
        .unwrap();
    let producer = client.producer(Default::default());
    let stored = producer
        .send("orders-eu", Some("k"), "v")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(stored.offset, 0);
    let denied = client.admin().delete_topic("orders-eu").await.unwrap_err();
    assert_eq!(denied.reason(), Some("NOT_AUTHORIZED"), "{denied}");
    let out = brook(
        &[
            "acl",
            "remove",
            "--principal",
            "shop",
            "--producer",
            "--topic",
            "orders-",
            "--prefix",
        ],
        &s.admin,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "removed 1 ACL entries\n"
    );
}

/// --metrics-auth required: /metrics answers 401 without a known token and
/// the page with one; the probes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token() {
    let s = secured(&["--metrics-auth", "required"]).await;
    let page = http_get(s.broker.metrics, "/metrics").await;
    assert!(page.starts_with("HTTP/1.1 401"), "{page}");
    assert!(
        page.to_lowercase().contains("www-authenticate: bearer"),
        "{page}"
    );
    let with = |token: &str| {
        let addr = s.broker.metrics;
        let token = token.to_string();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let ask = format!(
                "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            );
            c.write_all(ask.as_bytes()).await.unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    assert!(with("brook_wrong").await.starts_with("HTTP/1.1 401"));
    // A known token whose principal may not describe the cluster: refused.
    let nobody = token("nobody", &s.tokens);
    s.reload(1).await;
    assert!(with(&nobody).await.starts_with("HTTP/1.1 401"));
    let page = with(&s.admin).await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("brook_build_info"),
        "{page}"
    );
    assert!(
        http_get(s.broker.metrics, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
}

/// With mutual TLS, a client certificate's subject is the principal, and
/// ACLs name it so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_names_the_principal() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        // Not rcgen's default name: only what the test gives.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into()], "localhost");
    let (client_cert, client_key) = leaf(vec![], "billing");
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server_cert),
        ("server.key", server_key),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let p = |n: &str| dir.path().join(n).display().to_string();
    let flags = [
        "--auth".to_string(),
        "required".into(),
        "--tls-cert".into(),
        p("server.pem"),
        "--tls-key".into(),
        p("server.key"),
        "--tls-client-ca".into(),
        p("ca.pem"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let broker = Broker::spawn(&dir.path().join("data"), &flags);
    let client = || async {
        brook_client::Client::builder(format!("https://127.0.0.1:{}", broker.grpc.port()))
            .tls_ca_pem(ca.pem().into_bytes())
            .tls_domain("localhost")
            .tls_identity(
                client_cert.clone().into_bytes(),
                client_key.clone().into_bytes(),
            )
            .connect()
            .await
    };
    let mut me = None;
    eventually("the TLS broker to answer", async || {
        if let Ok(c) = client().await {
            me = c.admin().who_am_i().await.ok();
        }
        me.is_some()
    })
    .await;
    let me = me.unwrap();
    assert_eq!(
        (me.principal.as_str(), me.auth.as_str()),
        ("CN=billing,O=Acme", "required")
    );
    let c = client().await.unwrap();
    let e = c.admin().list_acls(Default::default()).await.unwrap_err();
    assert_eq!(e.reason(), Some("NOT_AUTHORIZED"), "{e}");
    assert!(e.to_string().contains("CN=billing,O=Acme"), "{e}");
}
