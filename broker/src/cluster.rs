//! The `brook.v1.Cluster` service: the brokers and their state (one today).

use std::sync::Arc;

use brook_protocol::v1::{self, cluster_server::Cluster};
use tonic::{Request, Response, Status};

use crate::state::Broker;

/// Implements `brook.v1.Cluster`.
pub struct ClusterService {
    broker: Arc<Broker>,
}

impl ClusterService {
    /// A service over the shared broker state.
    pub fn new(broker: Arc<Broker>) -> Self {
        ClusterService { broker }
    }

    /// This broker: answered while recovering and shutting down too (with
    /// `ready` false), since that is when an operator asks.
    fn this_broker(&self) -> v1::BrokerDescription {
        let b = &self.broker;
        let (topics, partitions, offline) = match b.log() {
            Ok(log) => {
                let topics = log.topics();
                let partitions = topics.iter().map(|t| t.partition_count()).sum();
                (topics.len() as u32, partitions, log.offline().len() as u32)
            }
            Err(_) => (0, 0, 0),
        };
        v1::BrokerDescription {
            version: crate::build::VERSION.into(),
            commit: crate::build::COMMIT.into(),
            started_at_ms: b.started_at_ms,
            uptime_ms: b.started.elapsed().as_millis() as u64,
            ready: b.is_ready(),
            topics,
            partitions,
            offline_partitions: offline,
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn describe_cluster(
        &self,
        req: Request<v1::DescribeClusterRequest>,
    ) -> Result<Response<v1::ClusterDescription>, Status> {
        self.broker.auth.authorize(
            &crate::auth::Caller::of(&req),
            crate::auth::acl::Operation::Describe,
            crate::auth::acl::ResourceType::Cluster,
            crate::auth::acl::CLUSTER,
        )?;
        Ok(Response::new(v1::ClusterDescription {
            brokers: vec![self.this_broker()],
        }))
    }
}
