//! `/api/v1/rules`: routing rules with their counts and lag, and a pattern
//! tester that compiles and matches exactly as the rules engine does.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use brook_protocol::v1;
use brook_protocol::v1::rules_server::Rules;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{ApiResult, Failure, Who, body, ok};
use crate::error::{ApiError, Reason};
use crate::rules::pattern::Pattern;
use crate::rules::service::RulesService;
use crate::state::Broker;

fn service(broker: &Arc<Broker>) -> RulesService {
    RulesService::new(Arc::clone(broker))
}

fn state_name(v: i32) -> &'static str {
    match v1::RuleState::try_from(v) {
        Ok(v1::RuleState::Running) => "running",
        Ok(v1::RuleState::Paused) => "paused",
        Ok(v1::RuleState::Failed) => "failed",
        _ => "unknown",
    }
}

fn rule_json(r: &v1::RuleDescription) -> Value {
    let d = r.rule.clone().unwrap_or_default();
    json!({
        "name": d.name,
        "source_topic": d.source_topic,
        "event_pattern": d.event_pattern,
        "targets": d.targets,
        "transform": d.transform.map(|t| t.fields.iter().map(|f| json!({
            "name": f.name,
            "path": f.path,
        })).collect::<Vec<_>>()),
        "state": state_name(r.state),
        "reason": r.reason,
        "matched": r.matched,
        "forwarded": r.forwarded,
        "failed": r.failed,
        "lag": r.lag,
        "created_ms": r.created_ms,
        "partitions": r.partitions.len(),
    })
}

/// `GET /api/v1/rules`.
pub async fn list(State(broker): State<Arc<Broker>>, who: Who) -> ApiResult<Response> {
    let rules = service(&broker)
        .list_rules(who.request(v1::ListRulesRequest::default()))
        .await?
        .into_inner()
        .rules;
    ok(json!({ "rules": rules.iter().map(rule_json).collect::<Vec<_>>() }))
}

/// `GET /api/v1/rules/{name}`.
pub async fn describe(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let r = service(&broker)
        .describe_rule(who.request(v1::DescribeRuleRequest { name }))
        .await?
        .into_inner();
    ok(rule_json(&r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    pattern: String,
    event: String,
}

/// `POST /api/v1/rules/test`: whether `event` matches `pattern`, and if
/// not, the first field that does not.
pub async fn test(_who: Who, bytes: Bytes) -> ApiResult<Response> {
    let b: TestBody = body(&bytes)?;
    let pattern = Pattern::parse(&b.pattern).map_err(|e| -> Failure {
        ApiError::new(Reason::InvalidPattern, e.to_string())
            .with("path", e.path)
            .into()
    })?;
    let event: Value = serde_json::from_str(&b.event)
        .map_err(|e| Failure::invalid(format!("the event is not JSON: {e}")))?;
    match pattern.explain(&event) {
        Ok(()) => ok(json!({"matches": true})),
        Err(why) => ok(json!({"matches": false, "mismatch": why.to_string()})),
    }
}
