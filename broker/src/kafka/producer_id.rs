//! InitProducerId: an idempotent producer's id, from the same allocator as
//! the gRPC `InitProducer`. Transactions are not supported: a transactional
//! id is refused (docs/kafka.md).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;

use super::connection::Session;
use super::errors;

pub(super) fn handle(s: &Session, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default();
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // Kafka's rule, as gRPC's InitProducer: whoever may write some topic
    // may be an idempotent producer.
    if let Err(e) = s.broker.auth.authorize_some(
        &s.caller,
        crate::auth::acl::Operation::Write,
        crate::auth::acl::ResourceType::Topic,
    ) {
        return resp.with_error_code(match e.reason() {
            crate::error::Reason::NotAuthorized => ResponseError::ClusterAuthorizationFailed.code(),
            _ => errors::code(&e),
        });
    }
    match s.broker.allocate_producer_id() {
        // A new id at epoch 0, also when the client asks to bump its epoch
        // (KIP-360): its sequences start again either way.
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => resp.with_error_code(errors::code(&e)),
    }
}
