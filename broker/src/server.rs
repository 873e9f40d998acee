//! Starting, running and stopping the broker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use brook_protocol::v1::{
    self, acls_server::AclsServer, cluster_server::ClusterServer, consumer_server::ConsumerServer,
    groups_server::GroupsServer, producer_server::ProducerServer, queues_server::QueuesServer,
    topics_server::TopicsServer,
};
use brook_storage::{DirLock, Log, LogOptions, now_ms};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::cluster::ClusterService;
use crate::config::ServeConfig;
use crate::consume::ConsumerService;
use crate::groups::Groups;
use crate::groups::service::{GroupsService, counter};
use crate::produce::ProducerService;
use crate::queues::Queues;
use crate::request::RequestLayer;
use crate::signals::Signals;
use crate::state::Broker;
use crate::topics::TopicsService;

/// gRPC health service name that is NOT_SERVING while any partition is
/// offline (the server as a whole, "", stays SERVING: the rest serves).
pub const STORAGE_HEALTH: &str = "brook.storage";

/// HTTP/2 receive window of each stream. hyper's default (1 MiB) is smaller
/// than one default producer batch, so every batch waited a round trip for a
/// window update mid-way; this lets a few batches be in flight per stream.
const H2_STREAM_WINDOW: u32 = 8 << 20;
/// HTTP/2 receive window of a connection: what one client may have sent and
/// the broker not yet read, across its streams.
const H2_CONNECTION_WINDOW: u32 = 32 << 20;
/// Largest HTTP/2 frame a client may send: fewer, larger frames per batch.
const H2_MAX_FRAME: u32 = 1 << 20;

/// Runs the broker until the first stop signal, then stops it cleanly: stop
/// accepting, end subscriptions, give in-flight requests up to
/// `shutdown_timeout` to finish (a second signal stops waiting at once), then
/// drop what is left and flush and close every partition (writing the
/// clean-shutdown markers). A further signal while the log closes, or a
/// second one during recovery, exits at once: the next start recovers, as
/// after a crash.
///
/// Start-up order: lock the data directory (a second broker on it exits at
/// once, before binding anything), raise the descriptor limit, bind both
/// ports (requests get UNAVAILABLE and gRPC health says NOT_SERVING while
/// the log recovers), recover, and only then print
/// `brook listening grpc=ADDR metrics=ADDR kafka=ADDR` on stdout: the line means the
/// broker serves.
pub async fn run(config: ServeConfig, mut signals: Signals) -> anyhow::Result<()> {
    // The storage error names the directory and the holder's PID.
    let lock = DirLock::exclusive(&config.data_dir)?;
    crate::fdlimit::raise_nofile();
    // Before binding: a bad certificate stops the start with its reason.
    let mut server = Server::builder();
    if let Some(tls) = &config.tls {
        let mut settings = ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert, &tls.key));
        if let Some(ca) = &tls.client_ca {
            settings = settings.client_ca_root(Certificate::from_pem(ca));
        }
        server = server
            .tls_config(settings)
            .context("the TLS certificate or key is not usable")?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding gRPC address {}", config.listen))?;
    let metrics_listener = TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding metrics address {}", config.metrics_listen))?;
    let kafka_listener = match config.kafka.listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("binding Kafka address {addr} (--kafka-listen off turns it off)")
        })?),
        None => None,
    };
    let grpc_addr = listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let kafka_addr = kafka_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;

    let auth = crate::auth::Auth::open(config.auth.clone(), config.data_dir.clone())
        .map_err(anyhow::Error::msg)?;
    let auth = Arc::new(auth);
    auth.reload_on_sighup();
    let broker = Arc::new(Broker::new(config.clone(), Arc::clone(&auth)));
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    // Both versions: grpcurl and grpc's own clients speak v1; grpcio's
    // reflection client, older grpcurl, grpcui and Postman speak v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    if let (Some(kafka), Some(addr)) = (kafka_listener, kafka_addr) {
        let advertised = match &config.kafka.advertised {
            Some((host, port)) => crate::kafka::Advertised {
                host: host.clone(),
                port: i32::from(*port),
            },
            None => crate::kafka::Advertised {
                // An unspecified address cannot be connected to: name loopback.
                host: match addr.ip().is_unspecified() {
                    true => "127.0.0.1".to_string(),
                    false => addr.ip().to_string(),
                },
                port: i32::from(addr.port()),
            },
        };
        tokio::spawn(crate::kafka::serve(kafka, Arc::clone(&broker), advertised));
    }
    let reflection_v1 = reflection()
        .build_v1()
        .context("building the reflection service")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building the reflection service (v1alpha)")?;
    let max = config.max_request_bytes;
    let grpc_stop = {
        let mut signal = broker.shutdown_signal();
        async move {
            let _ = signal.wait_for(|s| *s).await;
        }
    };
    let incoming = crate::conn::incoming(
        listener,
        crate::conn::Counters {
            open: broker.metrics.open_connections.clone(),
            errors: broker.metrics.accept_errors.clone(),
            refused: broker.metrics.connections_refused.clone(),
        },
        config.max_connections,
    );
    let grpc = tokio::spawn(
        server
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_frame_size(H2_MAX_FRAME)
            .max_concurrent_streams(Some(config.max_streams_per_connection))
            // A peer that stops answering pings (a dead host, a cut network)
            // is noticed and its connection closed.
            .http2_keepalive_interval(config.keepalive.map(|(every, _)| every))
            .http2_keepalive_timeout(config.keepalive.map(|(_, timeout)| timeout))
            // Outermost first: the request layer records the status after
            // tonic_status has corrected it.
            .layer(RequestLayer::new(broker.metrics.requests.clone()))
            .layer(tower::util::MapResponseLayer::new(
                crate::tonic_status::correct_response,
            ))
            .layer(crate::auth::layer::AuthLayer::new(Arc::clone(&auth)))
            .layer(crate::request::DeadlineLayer::new(config.request_timeout))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                TopicsServer::new(TopicsService::new(Arc::clone(&broker)))
                    .max_decoding_message_size(max),
            )
            .add_service(
                ProducerServer::new(ProducerService::new(Arc::clone(&broker)))
                    .max_decoding_message_size(max),
            )
            .add_service(
                GroupsServer::new(GroupsService::new(Arc::clone(&broker)))
                    .max_decoding_message_size(max),
            )
            .add_service(
                QueuesServer::new(crate::queues::service::QueuesService::new(Arc::clone(
                    &broker,
                )))
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX),
            )
            .add_service(ClusterServer::new(ClusterService::new(Arc::clone(&broker))))
            .add_service(
                v1::schemas_server::SchemasServer::new(
                    crate::schemas::service::SchemasService::new(Arc::clone(&broker)),
                )
                .max_decoding_message_size(max),
            )
            .add_service(v1::rules_server::RulesServer::new(
                crate::rules::service::RulesService::new(Arc::clone(&broker)),
            ))
            .add_service(AclsServer::new(crate::auth::service::AclsService::new(
                Arc::clone(&auth),
                config.auth.super_users.clone(),
            )))
            .add_service(
                ConsumerServer::new(ConsumerService::new(Arc::clone(&broker)))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(usize::MAX),
            )
            .serve_with_incoming_shutdown(incoming, grpc_stop),
    );
    let metrics = tokio::spawn(crate::metrics::serve(metrics_listener, Arc::clone(&broker)));

    let started = std::time::Instant::now();
    let options = LogOptions {
        on_open_error: config.on_open_error,
        ..LogOptions::default()
    };
    let delay = config.debug_delay_recovery;
    let recovering = async move {
        tokio::time::sleep(delay).await;
        tokio::task::spawn_blocking(move || Log::open_with(lock, options)).await
    };
    // Storage errors name the file and what was wrong: no context to repeat.
    let log = tokio::select! {
        log = recovering => log??,
        () = signals.wait_for(2) => exit_now("during recovery"),
    };
    let log = Arc::new(log);
    crate::fdlimit::check_map_count();
    let groups_dir = config.data_dir.join("~groups");
    let offsets_flush = config.topic_defaults.flush;
    let groups =
        tokio::task::spawn_blocking(move || Groups::open(groups_dir, offsets_flush)).await??;
    let groups = Arc::new(groups);
    let ids = crate::producer_ids::ProducerIds::open(&config.data_dir)
        .context("reading the producer-id reservation")?;
    broker.set_producer_ids(ids);
    let queues_dir = config.data_dir.join("~queues");
    let queues = Arc::new(
        tokio::task::spawn_blocking(move || Queues::open(&queues_dir, offsets_flush))
            .await?
            .context("opening the queue groups' state")?,
    );
    broker.set_queues(Arc::clone(&queues));
    let schemas_dir = config.data_dir.join("~schemas");
    let schemas = Arc::new(
        tokio::task::spawn_blocking(move || {
            crate::schemas::Registry::open(&schemas_dir, offsets_flush)
        })
        .await?
        .context("opening the schema registry")?,
    );
    schemas.set_validation_threads(config.validation_threads);
    let _ = broker.schemas.set(Arc::clone(&schemas));
    let rules_dir = config.data_dir.join("~rules");
    let rules = Arc::new(
        tokio::task::spawn_blocking(move || crate::rules::Rules::open(&rules_dir, offsets_flush))
            .await?
            .context("opening the rules")?,
    );
    broker.set_rules(Arc::clone(&rules));
    broker.set_ready(Arc::clone(&log), Arc::clone(&groups));
    let reaper = tokio::spawn(expire_members(
        Arc::clone(&broker),
        Arc::clone(&log),
        Arc::clone(&groups),
    ));
    if config.console {
        tokio::spawn(Arc::clone(&broker.console_history).run(Arc::clone(&broker)));
    }
    set_health(&health, ServingStatus::Serving).await;
    let offline = log.offline();
    let storage_health = match offline.is_empty() {
        true => ServingStatus::Serving,
        false => ServingStatus::NotServing,
    };
    health
        .set_service_status(STORAGE_HEALTH, storage_health)
        .await;
    tracing::info!(
        topics = log.topics().len(),
        offline_partitions = offline.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "log recovered; serving"
    );
    let tls = if config.tls.is_some() { " tls=on" } else { "" };
    let kafka = kafka_addr.map_or(String::new(), |a| format!(" kafka={a}"));
    println!("brook listening grpc={grpc_addr} metrics={metrics_addr}{kafka}{tls}");
    tracing::info!(grpc = %grpc_addr, metrics = %metrics_addr, kafka = ?kafka_addr, data_dir = %config.data_dir.display(), "brook listening");
    let cleaner = {
        let log = Arc::downgrade(&log);
        let partitions = move || log.upgrade().map_or_else(Vec::new, |l| l.partitions());
        Arc::new(
            brook_storage::compaction::Cleaner::start(partitions, config.cleaner.clone())
                .context("starting the log cleaner thread")?,
        )
    };
    broker.metrics.set_cleaner(Arc::clone(&cleaner));
    let retention = tokio::spawn(retention_loop(
        Arc::clone(&broker),
        Arc::clone(&log),
        config.retention_check_interval,
    ));
    let offsets_maintenance = {
        let groups = Arc::clone(&groups);
        let period = groups.offsets.maintenance_period();
        tokio::spawn(maintain_log(
            Arc::clone(&broker),
            "offsets",
            period,
            move || groups.offsets.maintain(),
        ))
    };
    let queues_maintenance = {
        let queues = Arc::clone(&queues);
        let period = queues.maintenance_period();
        tokio::spawn(maintain_log(
            Arc::clone(&broker),
            "queues",
            period,
            move || queues.maintain(),
        ))
    };
    let queue_sweeper = tokio::spawn(sweep_queues(Arc::clone(&broker), Arc::clone(&queues)));
    let schemas_maintenance = {
        let schemas = Arc::clone(&schemas);
        let period = schemas.maintenance_period();
        tokio::spawn(maintain_log(
            Arc::clone(&broker),
            "schemas",
            period,
            move || schemas.maintain(),
        ))
    };
    let rules_maintenance = {
        let rules = Arc::clone(&rules);
        let period = rules.maintenance_period();
        tokio::spawn(maintain_log(
            Arc::clone(&broker),
            "rules",
            period,
            move || rules.maintain(),
        ))
    };
    let rule_delivery = tokio::spawn(crate::rules::deliver::run(
        Arc::clone(&broker),
        Arc::clone(&rules),
    ));

    signals.wait_for(1).await;
    let timeout = config.shutdown_timeout;
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "shutting down: finishing in-flight requests (a second signal stops waiting)"
    );
    set_health(&health, ServingStatus::NotServing).await;
    broker.begin_shutdown();
    groups.coordinator.shutdown();
    reaper.abort();
    retention.abort();
    offsets_maintenance.abort();
    queues_maintenance.abort();
    queue_sweeper.abort();
    schemas_maintenance.abort();
    rules_maintenance.abort();
    let aborts = [grpc.abort_handle(), metrics.abort_handle()];
    let servers = async {
        let grpc = grpc.await;
        let metrics = metrics.await;
        (grpc, metrics)
    };
    let mut second = signals.clone();
    let dropped = tokio::select! {
        (grpc, metrics) = servers => {
            grpc?.context("gRPC server")?;
            metrics?;
            None
        }
        () = tokio::time::sleep(timeout) => Some("they did not finish within the shutdown timeout"),
        () = second.wait_for(2) => Some("a second stop signal came"),
    };
    if let Some(why) = dropped {
        // Their appends after this fail on the closed log: nothing half-acknowledged.
        aborts.iter().for_each(|a| a.abort());
        tracing::warn!(
            why,
            "dropping the connections of in-flight requests; the log closes cleanly"
        );
    }
    // Rule delivery ends at its next step (each step's appends and commit
    // are done by then); past the timeout it is dropped, as a crash would.
    let _ = tokio::time::timeout(timeout, rule_delivery).await;
    let stopping = std::time::Instant::now();
    tracing::info!("closing the log");
    // After the last append: storage writes each partition's producer-state
    // snapshot at its log end, before the clean-shutdown markers.
    let received = signals.count();
    let closing = tokio::task::spawn_blocking(move || {
        // Commits acknowledged before their sync was due reach the disk too.
        if let Err(e) = groups.offsets.sync_all() {
            tracing::error!(error = %format!("{e:#}"), "syncing the offsets log at shutdown failed");
        }
        if let Err(e) = queues.sync_all() {
            tracing::error!(error = %format!("{e:#}"), "syncing the queues log at shutdown failed");
        }
        if let Err(e) = schemas.sync_all() {
            tracing::error!(error = %format!("{e:#}"), "syncing the schemas log at shutdown failed");
        }
        if let Err(e) = rules.sync_all() {
            tracing::error!(error = %format!("{e:#}"), "syncing the rules log at shutdown failed");
        }
        // A pass in progress ends at its next batch (or throttled wait);
        // the segments it swapped in stay.
        cleaner.stop();
        log.close()
    });
    tokio::select! {
        closed = closing => closed?.context("closing the log")?,
        () = signals.wait_for(received + 1) => exit_now("while closing the log"),
    }
    tracing::info!(
        close_ms = stopping.elapsed().as_millis() as u64,
        "stopped cleanly"
    );
    Ok(())
}

/// Ends the process at once, as a crash would: acknowledged records are as
/// safe as their acknowledgement promised, and the next start recovers.
fn exit_now(when: &str) -> ! {
    tracing::error!(
        when,
        "another stop signal: exiting now; the next start recovers the log"
    );
    std::process::exit(1)
}

/// Runs `job` every `period` until the shutdown begins (a job under way finishes first).
async fn every<F, Fut>(broker: &Broker, period: Duration, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut shutdown = broker.shutdown_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        job().await;
    }
}

/// Removes group members whose session timed out, every 100 ms.
async fn expire_members(broker: Arc<Broker>, log: Arc<Log>, groups: Arc<Groups>) {
    every(&broker, Duration::from_millis(100), || {
        groups.coordinator.expire(&counter(&log));
        std::future::ready(())
    })
    .await;
}

/// Runs `maintain` (a state log's sync by its flush policy and rewrite once
/// it has grown: the offsets, queues and schemas logs) on a blocking thread
/// every `period`, until shutdown; failures are logged, naming `what`.
async fn maintain_log<F>(broker: Arc<Broker>, what: &'static str, period: Duration, maintain: F)
where
    F: Fn() -> anyhow::Result<()> + Clone + Send + 'static,
{
    every(&broker, period, || {
        let maintain = maintain.clone();
        async move {
            match tokio::task::spawn_blocking(maintain).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "{what} log maintenance failed")
                }
                Err(e) => tracing::error!(error = %e, "{what} log maintenance task failed"),
            }
        }
    })
    .await;
}

/// Treats expired leases of queue groups as failed deliveries, every
/// [`crate::queues::SWEEP_PERIOD`], until shutdown.
async fn sweep_queues(broker: Arc<Broker>, queues: Arc<Queues>) {
    let b = Arc::clone(&broker);
    every(&broker, crate::queues::SWEEP_PERIOD, || {
        let (broker, queues) = (Arc::clone(&b), Arc::clone(&queues));
        async move { queues.sweep(&broker).await }
    })
    .await;
}

/// Sets the health of the server as a whole ("") and of each Brook service.
async fn set_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for name in [
        "",
        "brook.v1.Topics",
        "brook.v1.Producer",
        "brook.v1.Consumer",
        "brook.v1.Groups",
        "brook.v1.Cluster",
        "brook.v1.Queues",
        "brook.v1.Rules",
    ] {
        health.set_service_status(name, status).await;
    }
}

/// Applies retention, and forgets idle producers, every `period` until shutdown.
async fn retention_loop(broker: Arc<Broker>, log: Arc<Log>, period: Duration) {
    let max_idle = broker.config.producer_id_expiration_ms;
    every(&broker, period, || {
        let log = Arc::clone(&log);
        async move {
            let expired = log.expire_producers(now_ms(), max_idle);
            if expired > 0 {
                tracing::info!(producers = expired, "forgot idle producers");
            }
            match tokio::task::spawn_blocking(move || log.enforce_retention(now_ms())).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(segments = n, "retention deleted segments"),
                Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                Err(e) => tracing::error!(error = %e, "retention task failed"),
            }
        }
    })
    .await;
}
