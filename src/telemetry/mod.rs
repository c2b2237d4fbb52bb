//! OpenTelemetry spans: one per run, one per node (id, kind, cache hit/miss, device, duration,
//! bytes), events for retries and fallbacks. Exported as OTLP JSON to a file or an endpoint.
//!
//! No patient data: attributes hold node ids, kinds, sizes and timings; messages that may
//! carry file paths are redacted by the caller before they reach a span.

mod exporter;
pub mod otlp_json;

pub use exporter::{ExporterError, OtlpJsonExporter};

use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The tracer of one process; disabled (every call a no-op) when there is no sink.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    tracer: Option<SdkTracer>,
}

/// Where spans go.
pub enum TraceSink {
    None,
    File(std::path::PathBuf),
    Otlp(String),
}

impl Telemetry {
    pub fn new(sink: TraceSink) -> Result<Telemetry, ExporterError> {
        let exporter = match sink {
            TraceSink::None => {
                return Ok(Telemetry {
                    provider: None,
                    tracer: None,
                })
            }
            TraceSink::File(p) => OtlpJsonExporter::file(&p)?,
            TraceSink::Otlp(e) => OtlpJsonExporter::http(&e)?,
        };
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        let tracer = provider.tracer("vistaflow");
        Ok(Telemetry {
            provider: Some(provider),
            tracer: Some(tracer),
        })
    }

    /// Starts a span, as a child of `parent` when given.
    pub fn span(
        &self,
        name: &'static str,
        parent: Option<&SpanHandle>,
        attrs: Vec<KeyValue>,
    ) -> SpanHandle {
        let Some(tracer) = &self.tracer else {
            return SpanHandle { cx: None };
        };
        let parent_cx = parent.and_then(|p| p.cx.clone()).unwrap_or_default();
        let mut span = tracer.start_with_context(name, &parent_cx);
        span.set_attributes(attrs);
        SpanHandle {
            cx: Some(parent_cx.with_span(span)),
        }
    }

    /// Flushes and stops the exporter; call once at the end of the process.
    pub fn shutdown(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

/// An open span; ends when [`SpanHandle::end`] is called.
#[derive(Clone)]
pub struct SpanHandle {
    cx: Option<Context>,
}

impl SpanHandle {
    pub fn set(&self, attrs: Vec<KeyValue>) {
        if let Some(cx) = &self.cx {
            cx.span().set_attributes(attrs);
        }
    }

    pub fn event(&self, name: &'static str, attrs: Vec<KeyValue>) {
        if let Some(cx) = &self.cx {
            cx.span().add_event(name, attrs);
        }
    }

    pub fn end(&self, error: Option<String>) {
        if let Some(cx) = &self.cx {
            let span = cx.span();
            span.set_status(match error {
                Some(e) => Status::error(e),
                None => Status::Ok,
            });
            span.end();
        }
    }
}
