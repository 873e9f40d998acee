//! The `brook.v1.Schemas` service: the registry's operations over gRPC,
//! for the CLI (`brook schema`) and gRPC users. Confluent's clients use the
//! REST API (`rest.rs`) over the same registry.

use std::sync::Arc;

use brook_protocol::v1::{self, schemas_server};
use tonic::{Request, Response, Status};

use super::{
    Binding, Kind, Level, Mode, OnInvalid, Registry, RegistryError, VersionInfo, VersionRef,
};
use crate::auth::Caller;
use crate::auth::acl::{CLUSTER, Operation, ResourceType};
use crate::error::{ApiError, ApiResult, Reason};
use crate::state::Broker;

/// Implements `brook.v1.Schemas`.
pub struct SchemasService {
    broker: Arc<Broker>,
}

impl SchemasService {
    /// A service over the broker's registry.
    pub fn new(broker: Arc<Broker>) -> Self {
        SchemasService { broker }
    }

    /// Checks `op` on the cluster for the caller, then runs `work` with the
    /// registry on a blocking thread (changes are synced before they return).
    async fn call<T: Send + 'static>(
        &self,
        caller: &Caller,
        op: Operation,
        work: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> ApiResult<T> {
        self.broker
            .auth
            .authorize(caller, op, ResourceType::Cluster, CLUSTER)?;
        self.run(work).await
    }

    /// Runs `work` with the registry on a blocking thread (the caller was
    /// authorized already).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> ApiResult<T> {
        let registry = self.broker.schemas.get().cloned().ok_or_else(|| {
            ApiError::new(
                Reason::BrokerStarting,
                "the broker is starting: its data directory is not open yet",
            )
        })?;
        tokio::task::spawn_blocking(move || work(&registry))
            .await
            .map_err(|e| ApiError::internal(format!("the registry's task failed: {e}")))?
            .map_err(api_error)
    }
}

/// A registry refusal as the broker's error: a reason by its kind, and
/// Confluent's code in the metadata.
fn api_error(e: RegistryError) -> ApiError {
    let reason = match e.status {
        404 => Reason::SchemaNotFound,
        409 => Reason::SchemaIncompatible,
        422 => Reason::InvalidSchema,
        503 => Reason::BrokerStarting,
        _ => Reason::Internal,
    };
    ApiError::new(reason, e.message).with("registry_code", e.code.to_string())
}

fn kind(name: &str) -> ApiResult<Kind> {
    name.parse::<Kind>()
        .map_err(|e| api_error(RegistryError::invalid_schema(e)))
}

fn which(version: u32) -> VersionRef {
    match version {
        0 => VersionRef::Latest,
        n => VersionRef::Number(n),
    }
}

fn topic_schema(topic: &str, b: Option<Binding>) -> v1::TopicSchema {
    let Some(b) = b else {
        return v1::TopicSchema {
            topic: topic.to_string(),
            ..Default::default()
        };
    };
    v1::TopicSchema {
        topic: topic.to_string(),
        value_subject: b.value_subject.clone().unwrap_or_default(),
        key_subject: b.key_subject.clone().unwrap_or_default(),
        mode: b.mode.name().to_string(),
        on_invalid: b.on_invalid.name().to_string(),
        dead_letter_topic: match b.on_invalid {
            OnInvalid::Refuse => b.dead_letter_topic.unwrap_or_default(),
            OnInvalid::DeadLetter => b
                .dead_letter_topic
                .unwrap_or_else(|| crate::schemas::default_dead_letter_topic(topic)),
        },
    }
}

fn version_proto(v: VersionInfo) -> v1::SchemaVersion {
    v1::SchemaVersion {
        subject: v.subject,
        version: v.version,
        id: v.id,
        schema_type: v.kind.name().to_string(),
        schema: v.text,
    }
}

#[tonic::async_trait]
impl schemas_server::Schemas for SchemasService {
    async fn register_schema(
        &self,
        req: Request<v1::RegisterSchemaRequest>,
    ) -> Result<Response<v1::RegisterSchemaResponse>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        let kind = kind(&r.schema_type)?;
        let done = self
            .call(&caller, Operation::Alter, move |reg| {
                reg.register(&r.subject, kind, &r.schema)
            })
            .await?;
        Ok(Response::new(v1::RegisterSchemaResponse {
            id: done.id,
            version: done.version,
            created: done.created,
        }))
    }

    async fn list_subjects(
        &self,
        req: Request<v1::ListSubjectsRequest>,
    ) -> Result<Response<v1::ListSubjectsResponse>, Status> {
        let caller = Caller::of(&req);
        let deleted = req.into_inner().include_deleted;
        let subjects = self
            .call(&caller, Operation::Describe, move |reg| {
                Ok(reg.subjects(deleted))
            })
            .await?;
        Ok(Response::new(v1::ListSubjectsResponse { subjects }))
    }

    async fn list_versions(
        &self,
        req: Request<v1::ListVersionsRequest>,
    ) -> Result<Response<v1::ListVersionsResponse>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        let versions = self
            .call(&caller, Operation::Describe, move |reg| {
                reg.versions(&r.subject, r.include_deleted)
            })
            .await?;
        Ok(Response::new(v1::ListVersionsResponse { versions }))
    }

    async fn get_schema_version(
        &self,
        req: Request<v1::GetSchemaVersionRequest>,
    ) -> Result<Response<v1::SchemaVersion>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        let v = self
            .call(&caller, Operation::Describe, move |reg| {
                reg.version(&r.subject, which(r.version), r.include_deleted)
            })
            .await?;
        Ok(Response::new(version_proto(v)))
    }

    async fn get_schema_by_id(
        &self,
        req: Request<v1::GetSchemaByIdRequest>,
    ) -> Result<Response<v1::SchemaVersion>, Status> {
        let caller = Caller::of(&req);
        let id = req.into_inner().id;
        let (kind, text) = self
            .call(&caller, Operation::Describe, move |reg| reg.schema(id))
            .await?;
        Ok(Response::new(v1::SchemaVersion {
            id,
            schema_type: kind.name().to_string(),
            schema: text,
            ..Default::default()
        }))
    }

    async fn check_compatibility(
        &self,
        req: Request<v1::CheckCompatibilityRequest>,
    ) -> Result<Response<v1::CheckCompatibilityResponse>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        let kind = kind(&r.schema_type)?;
        let against = (r.version != 0).then_some(VersionRef::Number(r.version));
        let problems = self
            .call(&caller, Operation::Describe, move |reg| {
                reg.check(&r.subject, against, kind, &r.schema)
            })
            .await?;
        Ok(Response::new(v1::CheckCompatibilityResponse {
            compatible: problems.is_empty(),
            problems,
        }))
    }

    async fn delete_schema(
        &self,
        req: Request<v1::DeleteSchemaRequest>,
    ) -> Result<Response<v1::DeleteSchemaResponse>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        let versions = self
            .call(&caller, Operation::Alter, move |reg| match r.version {
                0 => reg.delete_subject(&r.subject, r.permanent),
                n => reg
                    .delete_version(&r.subject, VersionRef::Number(n), r.permanent)
                    .map(|v| vec![v]),
            })
            .await?;
        Ok(Response::new(v1::DeleteSchemaResponse { versions }))
    }

    async fn get_compatibility(
        &self,
        req: Request<v1::GetCompatibilityRequest>,
    ) -> Result<Response<v1::CompatibilityLevel>, Status> {
        let caller = Caller::of(&req);
        let subject = req.into_inner().subject;
        let (level, own) = self
            .call(&caller, Operation::Describe, move |reg| {
                let name = (!subject.is_empty()).then_some(subject.as_str());
                let own = name.is_some_and(|n| reg.level(Some(n), false).is_ok());
                Ok((reg.level(name, true)?, own || name.is_none()))
            })
            .await?;
        Ok(Response::new(v1::CompatibilityLevel {
            level: level.name().to_string(),
            own,
        }))
    }

    async fn set_topic_schema(
        &self,
        req: Request<v1::TopicSchema>,
    ) -> Result<Response<v1::TopicSchema>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        self.broker
            .auth
            .authorize(&caller, Operation::Alter, ResourceType::Topic, &r.topic)?;
        brook_storage::validate_topic_name(&r.topic).map_err(ApiError::from)?;
        let mode = match r.mode.as_str() {
            "" => None,
            m => Some(
                m.parse::<Mode>()
                    .map_err(|e| api_error(RegistryError::invalid_request(e)))?,
            ),
        };
        let on_invalid = r
            .on_invalid
            .parse::<OnInvalid>()
            .map_err(|e| api_error(RegistryError::invalid_request(e)))?;
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if on_invalid == OnInvalid::DeadLetter {
            // The broker writes there for whoever produces to the topic:
            // only a caller who may write there can send records there.
            let dlq = some(&r.dead_letter_topic)
                .unwrap_or_else(|| crate::schemas::default_dead_letter_topic(&r.topic));
            self.broker
                .auth
                .authorize(&caller, Operation::Write, ResourceType::Topic, &dlq)?;
        }
        let binding = mode.map(|mode| Binding {
            value_subject: some(&r.value_subject),
            key_subject: some(&r.key_subject),
            mode,
            on_invalid,
            dead_letter_topic: some(&r.dead_letter_topic),
        });
        let topic = r.topic.clone();
        let stored = self
            .run(move |reg| {
                match &binding {
                    Some(b) => reg.bind(&topic, b)?,
                    None => reg.unbind(&topic)?,
                }
                Ok(reg.binding(&topic))
            })
            .await?;
        Ok(Response::new(topic_schema(&r.topic, stored)))
    }

    async fn get_topic_schema(
        &self,
        req: Request<v1::GetTopicSchemaRequest>,
    ) -> Result<Response<v1::TopicSchema>, Status> {
        let caller = Caller::of(&req);
        let topic = req.into_inner().topic;
        self.broker
            .auth
            .authorize(&caller, Operation::Describe, ResourceType::Topic, &topic)?;
        let name = topic.clone();
        let stored = self.run(move |reg| Ok(reg.binding(&name))).await?;
        Ok(Response::new(topic_schema(&topic, stored)))
    }

    async fn set_compatibility(
        &self,
        req: Request<v1::SetCompatibilityRequest>,
    ) -> Result<Response<v1::CompatibilityLevel>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        let level = match r.level.as_str() {
            "" => None,
            name => Some(
                name.parse::<Level>()
                    .map_err(|e| api_error(RegistryError::invalid_level(e)))?,
            ),
        };
        let (level, own) = self
            .call(&caller, Operation::Alter, move |reg| {
                let name = (!r.subject.is_empty()).then_some(r.subject.as_str());
                match level {
                    Some(level) => reg.set_level(name, level).map(|l| (l, true)),
                    None => {
                        reg.clear_level(name)?;
                        Ok((reg.level(name, true)?, name.is_none()))
                    }
                }
            })
            .await?;
        Ok(Response::new(v1::CompatibilityLevel {
            level: level.name().to_string(),
            own,
        }))
    }
}
