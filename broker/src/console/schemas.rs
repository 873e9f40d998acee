//! `/api/v1/schemas`: subjects with their versions and compatibility, a
//! version pretty-printed, and a line diff of two versions, through the
//! Schemas gRPC service.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use brook_protocol::v1;
use brook_protocol::v1::schemas_server::Schemas;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{ApiResult, Failure, Params, Who, body, number, ok, param};
use crate::schemas::service::SchemasService;
use crate::state::Broker;

fn service(broker: &Arc<Broker>) -> SchemasService {
    SchemasService::new(Arc::clone(broker))
}

async fn version_of(
    broker: &Arc<Broker>,
    who: &Who,
    subject: &str,
    version: u32,
) -> ApiResult<v1::SchemaVersion> {
    Ok(service(broker)
        .get_schema_version(who.request(v1::GetSchemaVersionRequest {
            subject: subject.to_string(),
            version,
            include_deleted: false,
        }))
        .await?
        .into_inner())
}

/// JSON schemas (and Avro's, which are JSON) pretty-printed; Protobuf and
/// anything else as registered.
fn pretty(schema: &str) -> String {
    match serde_json::from_str::<Value>(schema) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| schema.to_string()),
        Err(_) => schema.to_string(),
    }
}

/// `GET /api/v1/schemas/subjects`.
pub async fn subjects(State(broker): State<Arc<Broker>>, who: Who) -> ApiResult<Response> {
    let s = service(&broker);
    let names = s
        .list_subjects(who.request(v1::ListSubjectsRequest {
            include_deleted: false,
        }))
        .await?
        .into_inner()
        .subjects;
    let mut out = Vec::with_capacity(names.len());
    for subject in names {
        let versions = s
            .list_versions(who.request(v1::ListVersionsRequest {
                subject: subject.clone(),
                include_deleted: false,
            }))
            .await?
            .into_inner()
            .versions;
        let latest = match versions.last() {
            Some(v) => {
                let v = version_of(&broker, &who, &subject, *v).await?;
                json!({"version": v.version, "id": v.id, "schema_type": v.schema_type})
            }
            None => Value::Null,
        };
        let level = s
            .get_compatibility(who.request(v1::GetCompatibilityRequest {
                subject: subject.clone(),
            }))
            .await?
            .into_inner();
        out.push(json!({
            "subject": subject,
            "versions": versions,
            "latest": latest,
            "compatibility": level.own.then_some(level.level),
        }));
    }
    let global = s
        .get_compatibility(who.request(v1::GetCompatibilityRequest {
            subject: String::new(),
        }))
        .await?
        .into_inner();
    ok(json!({"subjects": out, "compatibility": global.level}))
}

/// `GET /api/v1/schemas/subjects/{subject}/versions/{version}`.
pub async fn version(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let version: u32 = number(&version, "version")?;
    let v = version_of(&broker, &who, &subject, version).await?;
    ok(json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema_type": v.schema_type,
        "schema": pretty(&v.schema),
    }))
}

/// `GET /api/v1/schemas/subjects/{subject}/diff?from=1&to=2`: the lines of
/// the pretty-printed schemas, kept, removed or added.
pub async fn diff(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let (Some(from), Some(to)) = (param::<u32>(&params, "from")?, param::<u32>(&params, "to")?)
    else {
        return Err(Failure::invalid("a diff needs from=VERSION and to=VERSION"));
    };
    let old = pretty(&version_of(&broker, &who, &subject, from).await?.schema);
    let new = pretty(&version_of(&broker, &who, &subject, to).await?.schema);
    let lines: Vec<Value> = similar::TextDiff::from_lines(&old, &new)
        .iter_all_changes()
        .map(|c| {
            let op = match c.tag() {
                similar::ChangeTag::Equal => " ",
                similar::ChangeTag::Delete => "-",
                similar::ChangeTag::Insert => "+",
            };
            json!({"op": op, "text": c.value().trim_end_matches('\n')})
        })
        .collect();
    ok(json!({"from": from, "to": to, "lines": lines}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelBody {
    level: String,
}

/// `PUT /api/v1/schemas/subjects/{subject}/compatibility`.
pub async fn set_compatibility(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let b: LevelBody = body(&bytes)?;
    let level = service(&broker)
        .set_compatibility(who.request(v1::SetCompatibilityRequest {
            subject,
            level: b.level,
        }))
        .await?
        .into_inner();
    ok(json!({"level": level.level}))
}
