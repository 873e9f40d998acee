//! Answers to requests this listener does not serve: an API that
//! ApiVersions does not list, or a listed API at a version outside its
//! range. Kafka's clients send only what ApiVersions lists, but tools,
//! hand-written clients and clients that skip the check do not: they get
//! an answer of the version they asked for with every error code
//! `UNSUPPORTED_VERSION` (which Kafka's clients raise as
//! `UnsupportedVersionException`) instead of a dropped connection. As
//! Kafka's own error answers do, every topic, partition, group or resource
//! named in the request gets its own entry, so a client that matches
//! answers to what it asked finds each one.

use kafka_protocol::messages::*;

/// The answer to `request` (decoded at `version`) carrying `code` wherever
/// the answer has an error code; `None` for an API added to the protocol
/// library after this list was written.
pub(super) fn answer(request: RequestKind, version: i16, code: i16) -> Option<ResponseKind> {
    use RequestKind as Q;
    use ResponseKind as A;
    /// An answer whose error code is its top-level one.
    macro_rules! top {
        ($kind:ident, $response:ident) => {
            A::$kind($response::default().with_error_code(code))
        };
    }
    /// An answer with no error code to carry (brokers' and controllers'
    /// own APIs, which no client sends): an empty one.
    macro_rules! empty {
        ($kind:ident, $response:ident) => {
            A::$kind($response::default())
        };
    }
    Some(match request {
        Q::Produce(r) => A::Produce(produce(r, code)),
        Q::Fetch(r) => A::Fetch(fetch(r, version, code)),
        Q::ListOffsets(r) => A::ListOffsets(list_offsets(r, code)),
        Q::Metadata(r) => A::Metadata(metadata(r, code)),
        Q::OffsetCommit(r) => A::OffsetCommit(offset_commit(r, code)),
        Q::OffsetFetch(r) => A::OffsetFetch(offset_fetch(r, version, code)),
        Q::DescribeGroups(r) => A::DescribeGroups(describe_groups(r, code)),
        Q::DeleteGroups(r) => A::DeleteGroups(delete_groups(r, code)),
        Q::CreateTopics(r) => A::CreateTopics(create_topics(r, code)),
        Q::DeleteTopics(r) => A::DeleteTopics(delete_topics(r, code)),
        Q::CreatePartitions(r) => A::CreatePartitions(create_partitions(r, code)),
        Q::DescribeConfigs(r) => A::DescribeConfigs(describe_configs(r, code)),
        Q::AlterConfigs(r) => A::AlterConfigs(alter_configs(r, code)),
        Q::IncrementalAlterConfigs(r) => {
            A::IncrementalAlterConfigs(incremental_alter_configs(r, code))
        }
        Q::DeleteRecords(r) => A::DeleteRecords(delete_records(r, code)),
        Q::OffsetForLeaderEpoch(r) => A::OffsetForLeaderEpoch(offset_for_leader_epoch(r, code)),
        Q::OffsetDelete(r) => A::OffsetDelete(offset_delete(r, code)),
        Q::TxnOffsetCommit(r) => A::TxnOffsetCommit(txn_offset_commit(r, code)),
        Q::AddPartitionsToTxn(r) => A::AddPartitionsToTxn(add_partitions_to_txn(r, version, code)),
        Q::CreateAcls(r) => A::CreateAcls(
            CreateAclsResponse::default().with_results(
                r.creations
                    .iter()
                    .map(|_| create_acls_response::AclCreationResult::default().with_error_code(code))
                    .collect(),
            ),
        ),
        Q::DeleteAcls(r) => A::DeleteAcls(
            DeleteAclsResponse::default().with_filter_results(
                r.filters
                    .iter()
                    .map(|_| {
                        delete_acls_response::DeleteAclsFilterResult::default().with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Q::DescribeProducers(r) => A::DescribeProducers(describe_producers(r, code)),
        Q::DescribeTransactions(r) => A::DescribeTransactions(
            DescribeTransactionsResponse::default().with_transaction_states(
                r.transactional_ids
                    .into_iter()
                    .map(|id| {
                        describe_transactions_response::TransactionState::default()
                            .with_transactional_id(id)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Q::ConsumerGroupDescribe(r) => A::ConsumerGroupDescribe(
            ConsumerGroupDescribeResponse::default().with_groups(
                r.group_ids
                    .into_iter()
                    .map(|g| {
                        consumer_group_describe_response::DescribedGroup::default()
                            .with_group_id(g)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Q::ShareGroupDescribe(r) => A::ShareGroupDescribe(
            ShareGroupDescribeResponse::default().with_groups(
                r.group_ids
                    .into_iter()
                    .map(|g| {
                        share_group_describe_response::DescribedGroup::default()
                            .with_group_id(g)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Q::DescribeTopicPartitions(r) => A::DescribeTopicPartitions(
            DescribeTopicPartitionsResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| {
                        describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic::default()
                            .with_name(Some(t.name))
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Q::AlterUserScramCredentials(r) => A::AlterUserScramCredentials(
            AlterUserScramCredentialsResponse::default().with_results(
                (r.deletions.into_iter().map(|d| d.name))
                    .chain(r.upsertions.into_iter().map(|u| u.name))
                    .map(|user| {
                        alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                            .with_user(user)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Q::AlterClientQuotas(r) => A::AlterClientQuotas(
            AlterClientQuotasResponse::default().with_entries(
                r.entries
                    .into_iter()
                    .map(|e| {
                        alter_client_quotas_response::EntryData::default()
                            .with_error_code(code)
                            .with_entity(
                                e.entity
                                    .into_iter()
                                    .map(|d| {
                                        alter_client_quotas_response::EntityData::default()
                                            .with_entity_type(d.entity_type)
                                            .with_entity_name(d.entity_name)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Q::ElectLeaders(r) => A::ElectLeaders(elect_leaders(r, version, code)),
        Q::AlterReplicaLogDirs(r) => A::AlterReplicaLogDirs(alter_replica_log_dirs(r, code)),
        Q::ApiVersions(_) => top!(ApiVersions, ApiVersionsResponse),
        Q::FindCoordinator(r) if version >= 4 => A::FindCoordinator(
            FindCoordinatorResponse::default().with_coordinators(
                r.coordinator_keys
                    .into_iter()
                    .map(|key| {
                        find_coordinator_response::Coordinator::default()
                            .with_key(key)
                            .with_node_id(BrokerId(-1))
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Q::FindCoordinator(_) => top!(FindCoordinator, FindCoordinatorResponse),
        Q::JoinGroup(_) => top!(JoinGroup, JoinGroupResponse),
        Q::Heartbeat(_) => top!(Heartbeat, HeartbeatResponse),
        Q::LeaveGroup(_) => top!(LeaveGroup, LeaveGroupResponse),
        Q::SyncGroup(_) => top!(SyncGroup, SyncGroupResponse),
        Q::ListGroups(_) => top!(ListGroups, ListGroupsResponse),
        Q::SaslHandshake(_) => top!(SaslHandshake, SaslHandshakeResponse),
        Q::SaslAuthenticate(_) => top!(SaslAuthenticate, SaslAuthenticateResponse),
        Q::InitProducerId(_) => top!(InitProducerId, InitProducerIdResponse),
        Q::AddOffsetsToTxn(_) => top!(AddOffsetsToTxn, AddOffsetsToTxnResponse),
        Q::EndTxn(_) => top!(EndTxn, EndTxnResponse),
        Q::ListTransactions(_) => top!(ListTransactions, ListTransactionsResponse),
        Q::DescribeAcls(_) => top!(DescribeAcls, DescribeAclsResponse),
        Q::DescribeLogDirs(_) => top!(DescribeLogDirs, DescribeLogDirsResponse),
        Q::DescribeCluster(_) => top!(DescribeCluster, DescribeClusterResponse),
        Q::DescribeClientQuotas(_) => top!(DescribeClientQuotas, DescribeClientQuotasResponse),
        Q::DescribeUserScramCredentials(_) => {
            top!(DescribeUserScramCredentials, DescribeUserScramCredentialsResponse)
        }
        Q::CreateDelegationToken(_) => top!(CreateDelegationToken, CreateDelegationTokenResponse),
        Q::RenewDelegationToken(_) => top!(RenewDelegationToken, RenewDelegationTokenResponse),
        Q::ExpireDelegationToken(_) => top!(ExpireDelegationToken, ExpireDelegationTokenResponse),
        Q::DescribeDelegationToken(_) => {
            top!(DescribeDelegationToken, DescribeDelegationTokenResponse)
        }
        Q::AlterPartitionReassignments(_) => {
            top!(AlterPartitionReassignments, AlterPartitionReassignmentsResponse)
        }
        Q::ListPartitionReassignments(_) => {
            top!(ListPartitionReassignments, ListPartitionReassignmentsResponse)
        }
        Q::UpdateFeatures(_) => top!(UpdateFeatures, UpdateFeaturesResponse),
        Q::ConsumerGroupHeartbeat(_) => top!(ConsumerGroupHeartbeat, ConsumerGroupHeartbeatResponse),
        Q::GetTelemetrySubscriptions(_) => {
            top!(GetTelemetrySubscriptions, GetTelemetrySubscriptionsResponse)
        }
        Q::PushTelemetry(_) => top!(PushTelemetry, PushTelemetryResponse),
        Q::ListConfigResources(_) => top!(ListConfigResources, ListConfigResourcesResponse),
        Q::ShareGroupHeartbeat(_) => top!(ShareGroupHeartbeat, ShareGroupHeartbeatResponse),
        Q::ShareFetch(_) => top!(ShareFetch, ShareFetchResponse),
        Q::ShareAcknowledge(_) => top!(ShareAcknowledge, ShareAcknowledgeResponse),
        Q::AlterShareGroupOffsets(_) => top!(AlterShareGroupOffsets, AlterShareGroupOffsetsResponse),
        Q::DeleteShareGroupOffsets(_) => {
            top!(DeleteShareGroupOffsets, DeleteShareGroupOffsetsResponse)
        }
        Q::DescribeShareGroupOffsets(_) => {
            empty!(DescribeShareGroupOffsets, DescribeShareGroupOffsetsResponse)
        }
        // Between brokers and controllers.
        Q::Vote(_) => top!(Vote, VoteResponse),
        Q::BeginQuorumEpoch(_) => top!(BeginQuorumEpoch, BeginQuorumEpochResponse),
        Q::EndQuorumEpoch(_) => top!(EndQuorumEpoch, EndQuorumEpochResponse),
        Q::DescribeQuorum(_) => top!(DescribeQuorum, DescribeQuorumResponse),
        Q::AlterPartition(_) => top!(AlterPartition, AlterPartitionResponse),
        Q::Envelope(_) => top!(Envelope, EnvelopeResponse),
        Q::FetchSnapshot(_) => top!(FetchSnapshot, FetchSnapshotResponse),
        Q::BrokerRegistration(_) => top!(BrokerRegistration, BrokerRegistrationResponse),
        Q::BrokerHeartbeat(_) => top!(BrokerHeartbeat, BrokerHeartbeatResponse),
        Q::UnregisterBroker(_) => top!(UnregisterBroker, UnregisterBrokerResponse),
        Q::AllocateProducerIds(_) => top!(AllocateProducerIds, AllocateProducerIdsResponse),
        Q::ControllerRegistration(_) => top!(ControllerRegistration, ControllerRegistrationResponse),
        Q::AssignReplicasToDirs(_) => top!(AssignReplicasToDirs, AssignReplicasToDirsResponse),
        Q::AddRaftVoter(_) => top!(AddRaftVoter, AddRaftVoterResponse),
        Q::RemoveRaftVoter(_) => top!(RemoveRaftVoter, RemoveRaftVoterResponse),
        Q::UpdateRaftVoter(_) => top!(UpdateRaftVoter, UpdateRaftVoterResponse),
        Q::WriteTxnMarkers(_) => empty!(WriteTxnMarkers, WriteTxnMarkersResponse),
        Q::InitializeShareGroupState(_) => {
            empty!(InitializeShareGroupState, InitializeShareGroupStateResponse)
        }
        Q::ReadShareGroupState(_) => empty!(ReadShareGroupState, ReadShareGroupStateResponse),
        Q::WriteShareGroupState(_) => empty!(WriteShareGroupState, WriteShareGroupStateResponse),
        Q::DeleteShareGroupState(_) => empty!(DeleteShareGroupState, DeleteShareGroupStateResponse),
        Q::ReadShareGroupStateSummary(_) => {
            empty!(ReadShareGroupStateSummary, ReadShareGroupStateSummaryResponse)
        }
        _ => return None,
    })
}

fn produce(r: ProduceRequest, code: i16) -> ProduceResponse {
    use produce_response::*;
    ProduceResponse::default().with_responses(
        r.topic_data
            .into_iter()
            .map(|t| {
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partition_responses(
                        t.partition_data
                            .iter()
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code)
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn fetch(r: FetchRequest, version: i16, code: i16) -> FetchResponse {
    use fetch_response::*;
    let top = if version >= 7 { code } else { 0 };
    FetchResponse::default()
        .with_error_code(top)
        .with_responses(
            r.topics
                .into_iter()
                .map(|t| {
                    FetchableTopicResponse::default()
                        .with_topic(t.topic)
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionData::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(code)
                                        .with_high_watermark(-1)
                                        .with_last_stable_offset(-1)
                                        .with_log_start_offset(-1)
                                        .with_records(Some(Default::default()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn list_offsets(r: ListOffsetsRequest, code: i16) -> ListOffsetsResponse {
    use list_offsets_response::*;
    ListOffsetsResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                                    .with_timestamp(-1)
                                    .with_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn metadata(r: MetadataRequest, code: i16) -> MetadataResponse {
    use metadata_response::*;
    MetadataResponse::default()
        .with_error_code(code)
        .with_topics(
            r.topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    MetadataResponseTopic::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_error_code(code)
                })
                .collect(),
        )
}

fn offset_commit(r: OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    use offset_commit_response::*;
    OffsetCommitResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn offset_fetch(r: OffsetFetchRequest, version: i16, code: i16) -> OffsetFetchResponse {
    use offset_fetch_response::*;
    if version >= 8 {
        return OffsetFetchResponse::default().with_groups(
            r.groups
                .into_iter()
                .map(|g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code)
                })
                .collect(),
        );
    }
    let top = if version >= 2 { code } else { 0 };
    OffsetFetchResponse::default()
        .with_error_code(top)
        .with_topics(
            r.topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|&p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn describe_groups(r: DescribeGroupsRequest, code: i16) -> DescribeGroupsResponse {
    DescribeGroupsResponse::default().with_groups(
        r.groups
            .into_iter()
            .map(|g| {
                describe_groups_response::DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect(),
    )
}

fn delete_groups(r: DeleteGroupsRequest, code: i16) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        r.groups_names
            .into_iter()
            .map(|g| {
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect(),
    )
}

fn create_topics(r: CreateTopicsRequest, code: i16) -> CreateTopicsResponse {
    CreateTopicsResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                create_topics_response::CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code)
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect(),
    )
}

fn delete_topics(r: DeleteTopicsRequest, code: i16) -> DeleteTopicsResponse {
    use delete_topics_response::DeletableTopicResult;
    let by_name = r.topic_names.into_iter().map(|n| {
        DeletableTopicResult::default()
            .with_name(Some(n))
            .with_error_code(code)
    });
    let by_state = r.topics.into_iter().map(|t| {
        DeletableTopicResult::default()
            .with_name(t.name)
            .with_topic_id(t.topic_id)
            .with_error_code(code)
    });
    DeleteTopicsResponse::default().with_responses(by_name.chain(by_state).collect())
}

fn create_partitions(r: CreatePartitionsRequest, code: i16) -> CreatePartitionsResponse {
    CreatePartitionsResponse::default().with_results(
        r.topics
            .into_iter()
            .map(|t| {
                create_partitions_response::CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code)
            })
            .collect(),
    )
}

fn describe_configs(r: DescribeConfigsRequest, code: i16) -> DescribeConfigsResponse {
    DescribeConfigsResponse::default().with_results(
        r.resources
            .into_iter()
            .map(|c| {
                describe_configs_response::DescribeConfigsResult::default()
                    .with_resource_type(c.resource_type)
                    .with_resource_name(c.resource_name)
                    .with_error_code(code)
            })
            .collect(),
    )
}

fn alter_configs(r: AlterConfigsRequest, code: i16) -> AlterConfigsResponse {
    AlterConfigsResponse::default().with_responses(
        r.resources
            .into_iter()
            .map(|c| {
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(c.resource_type)
                    .with_resource_name(c.resource_name)
                    .with_error_code(code)
            })
            .collect(),
    )
}

fn incremental_alter_configs(
    r: IncrementalAlterConfigsRequest,
    code: i16,
) -> IncrementalAlterConfigsResponse {
    IncrementalAlterConfigsResponse::default().with_responses(
        r.resources
            .into_iter()
            .map(|c| {
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(c.resource_type)
                    .with_resource_name(c.resource_name)
                    .with_error_code(code)
            })
            .collect(),
    )
}

fn delete_records(r: DeleteRecordsRequest, code: i16) -> DeleteRecordsResponse {
    use delete_records_response::*;
    DeleteRecordsResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(-1)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn offset_for_leader_epoch(
    r: OffsetForLeaderEpochRequest,
    code: i16,
) -> OffsetForLeaderEpochResponse {
    use offset_for_leader_epoch_response::*;
    OffsetForLeaderEpochResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                EpochEndOffset::default()
                                    .with_partition(p.partition)
                                    .with_leader_epoch(-1)
                                    .with_end_offset(-1)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn offset_delete(r: OffsetDeleteRequest, code: i16) -> OffsetDeleteResponse {
    use offset_delete_response::*;
    OffsetDeleteResponse::default()
        .with_error_code(code)
        .with_topics(
            r.topics
                .into_iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn txn_offset_commit(r: TxnOffsetCommitRequest, code: i16) -> TxnOffsetCommitResponse {
    use txn_offset_commit_response::*;
    TxnOffsetCommitResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn add_partitions_to_txn(
    r: AddPartitionsToTxnRequest,
    version: i16,
    code: i16,
) -> AddPartitionsToTxnResponse {
    use add_partitions_to_txn_response::*;
    let topics = |topics: Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic>| {
        topics
            .into_iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name)
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect()
    };
    if version <= 3 {
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topics(r.v3_and_below_topics));
    }
    AddPartitionsToTxnResponse::default()
        .with_error_code(code)
        .with_results_by_transaction(
            r.transactions
                .into_iter()
                .map(|t| {
                    AddPartitionsToTxnResult::default()
                        .with_transactional_id(t.transactional_id)
                        .with_topic_results(topics(t.topics))
                })
                .collect(),
        )
}

fn describe_producers(r: DescribeProducersRequest, code: i16) -> DescribeProducersResponse {
    use describe_producers_response::*;
    DescribeProducersResponse::default().with_topics(
        r.topics
            .into_iter()
            .map(|t| {
                TopicResponse::default().with_name(t.name).with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|&p| {
                            PartitionResponse::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

fn elect_leaders(r: ElectLeadersRequest, version: i16, code: i16) -> ElectLeadersResponse {
    use elect_leaders_response::*;
    let top = if version >= 1 { code } else { 0 };
    ElectLeadersResponse::default()
        .with_error_code(top)
        .with_replica_election_results(
            r.topic_partitions
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    ReplicaElectionResult::default()
                        .with_topic(t.topic)
                        .with_partition_result(
                            t.partitions
                                .iter()
                                .map(|&p| {
                                    PartitionResult::default()
                                        .with_partition_id(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn alter_replica_log_dirs(r: AlterReplicaLogDirsRequest, code: i16) -> AlterReplicaLogDirsResponse {
    use alter_replica_log_dirs_response::*;
    AlterReplicaLogDirsResponse::default().with_results(
        r.dirs
            .into_iter()
            .flat_map(|d| d.topics)
            .map(|t| {
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AlterReplicaLogDirPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::ResponseError;
    use kafka_protocol::protocol::StrBytes;

    const CODE: i16 = 35;

    /// A request of `key` at `version` read from filler bytes: all zeros
    /// (empty arrays and strings in the classic encoding) or all ones
    /// (empty compact arrays and strings in the flexible one).
    fn filler_request(key: ApiKey, version: i16) -> Option<RequestKind> {
        [0u8, 1].into_iter().find_map(|b| {
            let mut bytes = Bytes::from(vec![b; 256]);
            RequestKind::decode(key, &mut bytes, version).ok()
        })
    }

    fn round_trip(key: ApiKey, version: i16, answer: &ResponseKind) -> ResponseKind {
        let mut buf = BytesMut::new();
        answer
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
        let mut bytes = buf.freeze();
        let decoded = ResponseKind::decode(key, &mut bytes, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version} answer does not decode: {e}"));
        assert!(bytes.is_empty(), "{key:?} v{version}: bytes left over");
        decoded
    }

    #[test]
    fn every_api_at_every_version_gets_an_answer_a_client_decodes() {
        let mut answered = std::collections::BTreeSet::new();
        let mut failed = Vec::new();
        for key in ApiKey::iter() {
            let range = key.valid_versions();
            for version in range.min..=range.max {
                let Some(request) = filler_request(key, version) else {
                    continue;
                };
                let answer = answer(request, version, CODE)
                    .unwrap_or_else(|| panic!("{key:?} has no error answer"));
                let mut buf = BytesMut::new();
                if let Err(e) = answer.encode(&mut buf, version) {
                    failed.push(format!("{key:?} v{version}: {e}"));
                    continue;
                }
                round_trip(key, version, &answer);
                answered.insert(format!("{key:?}"));
            }
        }
        let all: Vec<_> = ApiKey::iter().map(|k| format!("{k:?}")).collect();
        let missed: Vec<_> = all.iter().filter(|k| !answered.contains(*k)).collect();
        assert!(failed.is_empty(), "answers that do not encode: {failed:#?}");
        assert!(missed.is_empty(), "never decoded from filler: {missed:?}");
    }

    #[test]
    fn each_partition_of_a_fetch_by_topic_id_is_refused() {
        use kafka_protocol::messages::fetch_request::*;
        let topic_id = uuid::Uuid::from_u128(7);
        let request = FetchRequest::default().with_topics(vec![
            FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    FetchPartition::default().with_partition(0),
                    FetchPartition::default().with_partition(3),
                ]),
        ]);
        let Some(ResponseKind::Fetch(r)) = answer(RequestKind::Fetch(request), 13, CODE) else {
            panic!("not a fetch answer");
        };
        let ResponseKind::Fetch(r) = round_trip(ApiKey::Fetch, 13, &ResponseKind::Fetch(r)) else {
            panic!("not a fetch answer");
        };
        assert_eq!(r.error_code, CODE);
        assert_eq!(r.responses.len(), 1);
        assert_eq!(r.responses[0].topic_id, topic_id);
        let parts: Vec<_> = r.responses[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect();
        assert_eq!(parts, [(0, CODE), (3, CODE)]);
    }

    #[test]
    fn an_unlisted_admin_api_answers_each_resource() {
        use kafka_protocol::messages::alter_configs_request::*;
        let request = AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("orders")),
        ]);
        let answer = answer(RequestKind::AlterConfigs(request), 1, CODE).unwrap();
        let ResponseKind::AlterConfigs(r) = round_trip(ApiKey::AlterConfigs, 1, &answer) else {
            panic!("not an AlterConfigs answer");
        };
        assert_eq!(r.responses.len(), 1);
        assert_eq!(r.responses[0].resource_name.as_str(), "orders");
        assert_eq!(
            r.responses[0].error_code,
            ResponseError::UnsupportedVersion.code()
        );
    }
}
