//! `/api/v1/session`, `/api/v1/overview` and its history.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::call::{ApiResult, Who, ok};
use super::history::Rates;
use crate::auth::acl::{CLUSTER, Operation, ResourceType};
use crate::auth::{AuthMode, Caller};
use crate::state::Broker;
use brook_protocol::v1::cluster_server::Cluster;

/// Whether `caller` may change things: the console hides its forms
/// otherwise (each change is still checked against the caller's ACLs).
pub fn may_alter(broker: &Broker, caller: &Caller) -> bool {
    broker
        .auth
        .may(caller, Operation::Alter, ResourceType::Cluster, CLUSTER)
}

/// `GET /api/v1/session`: whether a token is needed, and whose it is.
pub async fn session(State(broker): State<Arc<Broker>>, headers: HeaderMap) -> ApiResult<Response> {
    let required = broker.auth.mode() == AuthMode::Required;
    let caller = match (
        required,
        headers.contains_key(axum::http::header::AUTHORIZATION),
    ) {
        (false, _) => Some(Caller::default()),
        (true, false) => None,
        (true, true) => {
            let (principal, token) =
                crate::auth::layer::authenticate(&broker.auth, &headers, None)?;
            Some(Caller {
                principal: Some(principal.into()),
                token,
            })
        }
    };
    ok(json!({
        "auth_required": required,
        "authenticated": caller.is_some(),
        "principal": caller.as_ref().and_then(|c| c.principal.as_deref()),
        "may_alter": caller.as_ref().is_some_and(|c| may_alter(&broker, c)),
    }))
}

/// Rates as the API names them.
pub fn rates_json(r: &Rates) -> Value {
    json!({
        "produce_records_per_sec": r.produce_records,
        "produce_bytes_per_sec": r.produce_bytes,
        "fetch_records_per_sec": r.fetch_records,
        "fetch_bytes_per_sec": r.fetch_bytes,
    })
}

/// `GET /api/v1/overview`: the broker, its data directory and its rates.
pub async fn overview(State(broker): State<Arc<Broker>>, who: Who) -> ApiResult<Response> {
    let service = crate::cluster::ClusterService::new(Arc::clone(&broker));
    let cluster = service
        .describe_cluster(who.request(brook_protocol::v1::DescribeClusterRequest {}))
        .await?
        .into_inner();
    let Some(b) = cluster.brokers.into_iter().next() else {
        return Err(crate::error::ApiError::internal("the cluster lists no broker").into());
    };
    let log_bytes: u64 = broker
        .log()
        .map(|log| log.partitions().iter().map(|p| p.size_bytes()).sum())
        .unwrap_or(0);
    let dir = &broker.config.data_dir;
    let (fs_total, fs_available) = file_system_space(dir).unwrap_or((0, 0));
    ok(json!({
        "version": b.version,
        "commit": b.commit,
        "started_at_ms": b.started_at_ms,
        "uptime_ms": b.uptime_ms,
        "ready": b.ready,
        "topics": b.topics,
        "partitions": b.partitions,
        "offline_partitions": b.offline_partitions,
        "data_dir": {
            "path": dir.display().to_string(),
            "log_bytes": log_bytes,
            "fs_total_bytes": fs_total,
            "fs_available_bytes": fs_available,
        },
        "rates": rates_json(&broker.console_history.latest_rates()),
    }))
}

/// `GET /api/v1/overview/history`: the broker-wide rates, oldest first.
pub async fn history(State(broker): State<Arc<Broker>>, who: Who) -> ApiResult<Response> {
    broker
        .auth
        .authorize(&who.0, Operation::Describe, ResourceType::Cluster, CLUSTER)?;
    let history = &broker.console_history;
    let points: Vec<Value> = history
        .broker_rates()
        .iter()
        .map(|p| {
            let mut v = rates_json(&p.value);
            v["t_ms"] = json!(p.t_ms);
            v
        })
        .collect();
    ok(json!({
        "interval_ms": history.interval().as_millis() as u64,
        "points": points,
    }))
}

/// The size and free space (for unprivileged users) of the file system
/// holding `dir`.
fn file_system_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is NUL-terminated and `st` is written by statvfs
    // before it is read, which only happens when the call succeeded.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The fields' widths differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    let (block, blocks, available) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Some((blocks * block, available * block))
}
