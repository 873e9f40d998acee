//! The web console (`/ui`) and the JSON API it reads (`/api/v1`), on the
//! broker's HTTP port (docs/console.md).
//!
//! The API is a facade over the gRPC services, called in process with the
//! caller the request's bearer token names: what it may see and do, and the
//! errors it gets, are the gRPC API's. Only what has no RPC (messages by
//! time, search, history, the pattern tester, schema diffs) reads the broker
//! directly, after the same ACL checks.

mod assets;
mod call;
mod groups;
pub mod history;
mod messages;
mod overview;
mod queues;
mod rules;
mod schemas;
mod topics;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub(crate) use call::{from_own_origin, host_name, is_change};
pub use history::History;

use crate::state::Broker;

/// The console's routes: its page and assets under `/ui`, its API under
/// `/api/v1`.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/ui", get(assets::index))
        .route("/ui/", get(assets::index))
        .route("/ui/assets/{*file}", get(assets::asset))
        .route("/api/v1/session", get(overview::session))
        .route("/api/v1/overview", get(overview::overview))
        .route("/api/v1/overview/history", get(overview::history))
        .route("/api/v1/topics", get(topics::list).post(topics::create))
        .route(
            "/api/v1/topics/{topic}",
            get(topics::describe)
                .patch(topics::alter)
                .delete(topics::delete),
        )
        .route(
            "/api/v1/topics/{topic}/partitions",
            post(topics::add_partitions),
        )
        .route(
            "/api/v1/topics/{topic}/partitions/{partition}/messages",
            get(messages::browse),
        )
        .route("/api/v1/topics/{topic}/messages", post(messages::produce))
        .route("/api/v1/topics/{topic}/search", get(messages::search))
        .route("/api/v1/groups", get(groups::list))
        .route(
            "/api/v1/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route("/api/v1/groups/{group}/history", get(groups::history))
        .route(
            "/api/v1/groups/{group}/reset-offsets",
            post(groups::reset_offsets),
        )
        .route("/api/v1/queues", get(queues::list))
        .route("/api/v1/queues/{group}", get(queues::describe))
        .route("/api/v1/queues/{group}/history", get(queues::history))
        .route("/api/v1/queues/{group}/redrive", post(queues::redrive))
        .route("/api/v1/rules", get(rules::list))
        .route("/api/v1/rules/test", post(rules::test))
        .route("/api/v1/rules/{name}", get(rules::describe))
        .route("/api/v1/schemas/subjects", get(schemas::subjects))
        .route(
            "/api/v1/schemas/subjects/{subject}/versions/{version}",
            get(schemas::version),
        )
        .route(
            "/api/v1/schemas/subjects/{subject}/diff",
            get(schemas::diff),
        )
        .route(
            "/api/v1/schemas/subjects/{subject}/compatibility",
            axum::routing::put(schemas::set_compatibility),
        )
        .route("/api/v1/{*rest}", axum::routing::any(call::no_such_route))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&broker),
            call::guard,
        ))
        .with_state(broker)
}
