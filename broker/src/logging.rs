//! The process's log: what the broker and the CLI write on stderr, as text
//! for people (colours only on a terminal: files and `docker logs` get
//! plain text) or as one JSON object a line for log collectors (`brook
//! serve --log-format json`), each with its level, target, message,
//! fields, the span it was written in and, inside a traced span, the
//! `trace_id` and `span_id` (the ids a trace viewer shows).
//!
//! The same subscriber carries the OpenTelemetry layer when tracing is on
//! (`--otlp-endpoint`, or JSON logs): see [`crate::otel`].

use std::fmt::Write as _;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::otel::export::Settings;

/// `--log-format`: how log lines are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`), `span`, and `trace_id`/`span_id` inside a traced
    /// span.
    Json,
}

/// Keeps the tracer provider: dropping it exports the spans still
/// buffered (when the broker stops on a signal; not when a second signal
/// ends it at once).
#[must_use = "dropping it ends the export of spans"]
pub struct Logging {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Logging {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the process's log writer; `RUST_LOG` filters it (default
/// `info`). With `tracing`, the broker's spans are recorded (and exported
/// when it names an endpoint) whatever `RUST_LOG` says.
pub fn init(format: LogFormat, tracing: Option<&Settings>) -> anyhow::Result<Logging> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt
            // Colour codes only for a terminal.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format()
                .json()
                .with_current_span(true)
                .with_span_list(false);
            fmt.json()
                .event_format(WithTraceIds(json))
                .with_filter(filter)
                .boxed()
        }
    };
    let provider = tracing.map(crate::otel::export::provider).transpose()?;
    let exporting = tracing.is_some_and(|t| t.endpoint.is_some());
    let otel = provider.as_ref().map(|p| {
        crate::otel::turn_on(p.tracer("brook"), exporting);
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("brook"))
            .with_location(false)
            .with_threads(false)
            .with_filter(Targets::new().with_target("brook_broker", tracing::Level::INFO))
    });
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Ok(Logging { provider })
}

/// A JSON event format that adds the current OpenTelemetry span's ids.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        // An entered span's context is the thread's current one (the
        // OpenTelemetry layer attaches it on entry).
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The line is one JSON object (and a newline): the ids go in
        // before its closing brace.
        match line.trim_end().strip_suffix('}') {
            Some(open) => {
                let mut out = String::with_capacity(line.len() + 80);
                out.push_str(open);
                let _ = writeln!(
                    out,
                    ",\"trace_id\":\"{}\",\"span_id\":\"{}\"}}",
                    sc.trace_id(),
                    sc.span_id()
                );
                writer.write_str(&out)
            }
            None => writer.write_str(&line),
        }
    }
}
