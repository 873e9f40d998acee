//! Confluent's Schema Registry REST API over the registry, on the broker's
//! HTTP port beside `/metrics` (docs/schemas.md lists the routes). Bodies,
//! status codes and `error_code`s are Confluent's, so its clients and
//! serializers work unchanged.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Kind, Level, Registry, RegistryError, VersionRef};
use crate::auth::acl::{CLUSTER, Operation, ResourceType};
use crate::auth::{Auth, AuthMode, Caller};

/// Confluent's media type, sent on every answer.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What the routes share: the registry once the broker has opened it, and
/// the broker's authentication.
#[derive(Clone)]
pub struct RestState {
    /// Set once the data directory is open; 503 (50003) until then.
    pub registry: Arc<OnceLock<Arc<Registry>>>,
    /// Tokens and ACLs.
    pub auth: Arc<Auth>,
}

/// Refuses a change (POST, PUT, DELETE) that a web page of another site
/// sent: with authentication off nothing else would stop a page open in an
/// operator's browser from registering or deleting schemas. Confluent's
/// clients send no `Origin` and pass.
async fn same_site_changes(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if crate::console::is_change(&req) && !crate::console::from_own_origin(&req) {
        return RegistryError::forbidden(
            "a change from another site's page (its Origin is not this host) is refused"
                .to_string(),
        )
        .into_response();
    }
    next.run(req).await
}

/// The registry's routes.
pub fn router(state: RestState) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(get_schema))
        .route("/schemas/ids/{id}/schema", get(get_schema_text))
        .route("/schemas/ids/{id}/versions", get(schema_uses))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_one),
        )
        .route(
            "/config",
            get(get_global_level)
                .put(set_global_level)
                .delete(clear_global_level),
        )
        .route(
            "/config/{subject}",
            get(get_subject_level)
                .put(set_subject_level)
                .delete(clear_subject_level),
        )
        .route("/mode", get(mode))
        .route("/mode/{subject}", get(mode))
        .route("/associations/resources/{ns}/{resource}", get(associations))
        .route_layer(axum::middleware::from_fn(same_site_changes))
        .with_state(state)
}

/// An answer in Confluent's media type.
struct Answer(StatusCode, Value);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut resp = (self.0, self.1.to_string()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        resp
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = Answer(
            status,
            json!({"error_code": self.code, "message": self.message}),
        )
        .into_response();
        if self.status == 401 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"brook\""),
            );
        }
        resp
    }
}

type Result<T> = std::result::Result<T, RegistryError>;
type Params = Query<HashMap<String, String>>;

/// A boolean query parameter; Confluent's clients send `true`, `True`, ….
fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn ok(value: Value) -> Answer {
    Answer(StatusCode::OK, value)
}

/// Checks the caller's credentials (when the broker requires them) and
/// that an ACL lets it `op` the cluster (`describe` to read, `alter` to
/// change), then runs `work` on a blocking thread with the registry.
async fn call<T: Send + 'static>(
    state: &RestState,
    headers: &HeaderMap,
    op: Operation,
    work: impl FnOnce(&Registry) -> Result<T> + Send + 'static,
) -> Result<T> {
    authorize(&state.auth, headers, op)?;
    let registry = state.registry.get().cloned().ok_or_else(|| {
        RegistryError::unavailable(
            "the broker is starting: its data directory is not open yet".into(),
        )
    })?;
    tokio::task::spawn_blocking(move || work(&registry))
        .await
        .map_err(|e| RegistryError::store(format!("the request's task failed: {e}")))?
}

fn authorize(auth: &Auth, headers: &HeaderMap, op: Operation) -> Result<()> {
    if auth.mode() != AuthMode::Required {
        return Ok(());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(credential)
        .ok_or_else(|| {
            RegistryError::unauthenticated(
                "credentials needed: HTTP Basic with a broker token as the password (basic.auth.user.info=NAME:TOKEN), or Authorization: Bearer TOKEN".into(),
            )
        })?;
    let principal = auth.principal_of_token(&token).ok_or_else(|| {
        RegistryError::unauthenticated("unknown token: not in the broker's tokens file".into())
    })?;
    let caller = Caller {
        principal: Some(principal.as_str().into()),
        token: None,
    };
    if auth.may(&caller, op, ResourceType::Cluster, CLUSTER) {
        return Ok(());
    }
    let verb = if op == Operation::Alter {
        "alter"
    } else {
        "describe"
    };
    Err(RegistryError::forbidden(format!(
        "principal {principal:?} may not {verb} cluster {CLUSTER:?}, which the schema registry needs: no ACL allows it (brook acl add)"
    )))
}

/// The token of a Bearer header, or the password of a Basic one (the user
/// name is not checked: the token names the principal, as with SASL PLAIN).
fn credential(value: &HeaderValue) -> Option<String> {
    use base64::Engine;
    let v = value.to_str().ok()?.trim();
    if let Some(token) = crate::auth::layer::bearer(value) {
        return Some(token.to_string());
    }
    let encoded = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// The body of a register, lookup or compatibility request.
#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn schema_body(body: &Bytes) -> Result<(Kind, String)> {
    let body: SchemaBody = serde_json::from_slice(body).map_err(|e| {
        RegistryError::invalid_request(format!(
            "the body must be JSON with a \"schema\" string (and optionally \"schemaType\"): {e}"
        ))
    })?;
    if !body.references.is_empty() {
        return Err(RegistryError::invalid_schema(
            "schema references are not supported yet: register a self-contained schema".into(),
        ));
    }
    let kind = body
        .schema_type
        .as_deref()
        .unwrap_or("AVRO")
        .parse::<Kind>()
        .map_err(RegistryError::invalid_schema)?;
    Ok((kind, body.schema))
}

fn level_body(body: &Bytes) -> Result<Level> {
    #[derive(Deserialize)]
    struct LevelBody {
        compatibility: String,
    }
    let body: LevelBody = serde_json::from_slice(body).map_err(|e| {
        RegistryError::invalid_request(format!(
            "the body must be JSON with a \"compatibility\" string: {e}"
        ))
    })?;
    body.compatibility
        .parse::<Level>()
        .map_err(RegistryError::invalid_level)
}

/// A version as Confluent shows it (`schemaType` left out for Avro, as there).
fn version_json(v: &super::VersionInfo) -> Value {
    let mut out = json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema": v.text,
    });
    if v.kind != Kind::Avro {
        out["schemaType"] = json!(v.kind.name());
    }
    out
}

async fn root() -> Answer {
    ok(json!({}))
}

async fn list_subjects(
    State(s): State<RestState>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Answer> {
    let deleted = flag(&q, "deleted");
    let prefix = q.get("subjectPrefix").cloned().unwrap_or_default();
    let names = call(&s, &headers, Operation::Describe, move |r| {
        Ok(r.subjects(deleted))
    })
    .await?;
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    Ok(ok(json!(names)))
}

async fn list_versions(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Result<Answer> {
    let deleted = flag(&q, "deleted");
    let versions = call(&s, &headers, Operation::Describe, move |r| {
        r.versions(&subject, deleted)
    })
    .await?;
    Ok(ok(json!(versions)))
}

async fn register(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Answer> {
    let (kind, text) = schema_body(&body)?;
    let done = call(&s, &headers, Operation::Alter, move |r| {
        r.register(&subject, kind, &text)
    })
    .await?;
    Ok(ok(json!({"id": done.id})))
}

async fn lookup(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Answer> {
    let (kind, text) = schema_body(&body)?;
    let deleted = flag(&q, "deleted");
    let found = call(&s, &headers, Operation::Describe, move |r| {
        r.lookup(&subject, kind, &text, deleted)
    })
    .await?;
    Ok(ok(version_json(&found)))
}

async fn get_version(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Answer> {
    let which = VersionRef::parse(&version)?;
    let deleted = flag(&q, "deleted");
    let v = call(&s, &headers, Operation::Describe, move |r| {
        r.version(&subject, which, deleted)
    })
    .await?;
    Ok(ok(version_json(&v)))
}

async fn get_version_schema(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Response> {
    let which = VersionRef::parse(&version)?;
    let deleted = flag(&q, "deleted");
    let v = call(&s, &headers, Operation::Describe, move |r| {
        r.version(&subject, which, deleted)
    })
    .await?;
    Ok(raw_schema(v.text))
}

/// A schema's text as the body (it is JSON itself).
fn raw_schema(text: String) -> Response {
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    resp
}

async fn delete_subject(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Result<Answer> {
    let permanent = flag(&q, "permanent");
    let versions = call(&s, &headers, Operation::Alter, move |r| {
        r.delete_subject(&subject, permanent)
    })
    .await?;
    Ok(ok(json!(versions)))
}

async fn delete_version(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Answer> {
    let which = VersionRef::parse(&version)?;
    let permanent = flag(&q, "permanent");
    let number = call(&s, &headers, Operation::Alter, move |r| {
        r.delete_version(&subject, which, permanent)
    })
    .await?;
    Ok(ok(json!(number)))
}

async fn schema_types() -> Answer {
    ok(json!(["JSON", "AVRO"]))
}

fn schema_id(id: &str) -> Result<u32> {
    id.parse::<u32>()
        .map_err(|_| RegistryError::schema_not_found(format!("Schema {id} not found")))
}

async fn get_schema(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Answer> {
    let id = schema_id(&id)?;
    let (kind, text) = call(&s, &headers, Operation::Describe, move |r| r.schema(id)).await?;
    let mut out = json!({"schema": text});
    if kind != Kind::Avro {
        out["schemaType"] = json!(kind.name());
    }
    Ok(ok(out))
}

async fn get_schema_text(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = schema_id(&id)?;
    let (_, text) = call(&s, &headers, Operation::Describe, move |r| r.schema(id)).await?;
    Ok(raw_schema(text))
}

async fn schema_uses(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Answer> {
    let id = schema_id(&id)?;
    let uses = call(&s, &headers, Operation::Describe, move |r| r.uses(id)).await?;
    let uses: Vec<Value> = uses
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(json!(uses)))
}

fn compat_answer(problems: Vec<String>, verbose: bool) -> Answer {
    let mut out = json!({"is_compatible": problems.is_empty()});
    if verbose {
        out["messages"] = json!(problems);
    }
    ok(out)
}

async fn check_one(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Result<Answer> {
    let which = VersionRef::parse(&version)?;
    let (kind, text) = schema_body(&body)?;
    let problems = call(&s, &headers, Operation::Describe, move |r| {
        r.check(&subject, Some(which), kind, &text)
    })
    .await?;
    Ok(compat_answer(problems, flag(&q, "verbose")))
}

async fn check_all(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Answer> {
    let (kind, text) = schema_body(&body)?;
    let problems = call(&s, &headers, Operation::Describe, move |r| {
        r.check(&subject, None, kind, &text)
    })
    .await?;
    Ok(compat_answer(problems, flag(&q, "verbose")))
}

async fn get_global_level(State(s): State<RestState>, headers: HeaderMap) -> Result<Answer> {
    let level = call(&s, &headers, Operation::Describe, |r| r.level(None, true)).await?;
    Ok(ok(json!({"compatibilityLevel": level.name()})))
}

async fn set_global_level(
    State(s): State<RestState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer> {
    let level = level_body(&body)?;
    let level = call(&s, &headers, Operation::Alter, move |r| {
        r.set_level(None, level)
    })
    .await?;
    Ok(ok(json!({"compatibility": level.name()})))
}

async fn clear_global_level(State(s): State<RestState>, headers: HeaderMap) -> Result<Answer> {
    let before = call(&s, &headers, Operation::Alter, |r| r.clear_level(None)).await?;
    Ok(ok(json!({"compatibilityLevel": before.name()})))
}

async fn get_subject_level(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Result<Answer> {
    let fallback = flag(&q, "defaultToGlobal");
    let level = call(&s, &headers, Operation::Describe, move |r| {
        r.level(Some(&subject), fallback)
    })
    .await?;
    Ok(ok(json!({"compatibilityLevel": level.name()})))
}

async fn set_subject_level(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Answer> {
    let level = level_body(&body)?;
    let level = call(&s, &headers, Operation::Alter, move |r| {
        r.set_level(Some(&subject), level)
    })
    .await?;
    Ok(ok(json!({"compatibility": level.name()})))
}

async fn clear_subject_level(
    State(s): State<RestState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
) -> Result<Answer> {
    let before = call(&s, &headers, Operation::Alter, move |r| {
        r.clear_level(Some(&subject))
    })
    .await?;
    Ok(ok(json!({"compatibilityLevel": before.name()})))
}

/// Brook's registry is always writable (no import mode).
async fn mode() -> Answer {
    ok(json!({"mode": "READWRITE"}))
}

/// Confluent's subject associations are not kept: an empty list, which
/// its serializers take as "name the subject after the topic".
async fn associations() -> Answer {
    ok(json!([]))
}
