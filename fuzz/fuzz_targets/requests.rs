//! What every gRPC request decodes from: the input as each request message
//! of `protocol/proto/brook/v1/*.proto` (prost, as tonic decodes a request
//! body), including the streaming requests (`JoinMessage`, and
//! `ProduceRequest` of ProduceStream).
//!
//! Where a message decodes, encoding it and decoding that gives the same
//! message (prost drops unknown fields on the first decode). A produce
//! request's batch then goes through the checks the broker runs on it
//! (`Batch::parse`, `validate_records`).
#![no_main]

use brook_protocol::batch::Batch;
use brook_protocol::v1;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    // Producer
    if let Some(req) = round_trip::<v1::ProduceRequest>(&buf) {
        if let Ok(batch) = Batch::parse(req.batch) {
            let _ = batch.validate_records();
        }
    }
    round_trip::<v1::PublishRequest>(&buf);
    round_trip::<v1::InitProducerRequest>(&buf);
    // Consumer
    round_trip::<v1::FetchRequest>(&buf);
    round_trip::<v1::SubscribeRequest>(&buf);
    // Topics
    round_trip::<v1::CreateTopicRequest>(&buf);
    round_trip::<v1::DeleteTopicRequest>(&buf);
    round_trip::<v1::ListTopicsRequest>(&buf);
    round_trip::<v1::DescribeTopicRequest>(&buf);
    round_trip::<v1::AddPartitionsRequest>(&buf);
    round_trip::<v1::AlterTopicRequest>(&buf);
    // Groups
    round_trip::<v1::JoinMessage>(&buf);
    round_trip::<v1::CommitRequest>(&buf);
    round_trip::<v1::FetchCommittedRequest>(&buf);
    round_trip::<v1::ListGroupsRequest>(&buf);
    round_trip::<v1::DescribeGroupRequest>(&buf);
    round_trip::<v1::DeleteGroupRequest>(&buf);
    round_trip::<v1::GetConsumerLagRequest>(&buf);
    round_trip::<v1::ResetOffsetsRequest>(&buf);
    // Cluster
    round_trip::<v1::DescribeClusterRequest>(&buf);
    // Acls
    round_trip::<v1::CreateAclsRequest>(&buf);
    round_trip::<v1::ListAclsRequest>(&buf);
    round_trip::<v1::DeleteAclsRequest>(&buf);
    round_trip::<v1::WhoAmIRequest>(&buf);
});

/// Decodes `buf` as `M`; where it decodes, checks that the message
/// re-encodes to bytes of the length prost predicts that decode to the
/// same message.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(buf: &Bytes) -> Option<M> {
    let msg = M::decode(buf.clone()).ok()?;
    let encoded = msg.encode_to_vec();
    assert_eq!(encoded.len(), msg.encoded_len());
    match M::decode(encoded.as_slice()) {
        Ok(again) => assert_eq!(
            again,
            msg,
            "{} does not round-trip",
            std::any::type_name::<M>()
        ),
        Err(e) => panic!(
            "{} re-encoded does not decode: {e}",
            std::any::type_name::<M>()
        ),
    }
    Some(msg)
}
