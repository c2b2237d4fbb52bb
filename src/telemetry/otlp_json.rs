//! OTLP JSON encoding of spans (an `ExportTraceServiceRequest`), as the OpenTelemetry
//! "OTLP file" format and OTLP/HTTP with `application/json` both use.

use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{json, Value as Json};
use std::time::{SystemTime, UNIX_EPOCH};

/// One request holding `spans`, attributed to service `service`.
pub fn encode(service: &str, spans: &[SpanData]) -> Json {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [attr("service.name", &OtelValue::from(service.to_string()))] },
            "scopeSpans": [{
                "scope": { "name": "vistaflow", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }]
        }]
    })
}

fn span(s: &SpanData) -> Json {
    let mut out = json!({
        "traceId": s.span_context.trace_id().to_string(),
        "spanId": s.span_context.span_id().to_string(),
        "name": s.name,
        "kind": 1,
        "startTimeUnixNano": nanos(s.start_time),
        "endTimeUnixNano": nanos(s.end_time),
        "attributes": attrs(&s.attributes),
        "events": s.events.iter().map(|e| json!({
            "timeUnixNano": nanos(e.timestamp),
            "name": e.name,
            "attributes": attrs(&e.attributes),
        })).collect::<Vec<_>>(),
        "status": match &s.status {
            Status::Unset => json!({}),
            Status::Ok => json!({ "code": 1 }),
            Status::Error { description } => json!({ "code": 2, "message": description }),
        },
    });
    if s.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        out["parentSpanId"] = Json::String(s.parent_span_id.to_string());
    }
    out
}

/// OTLP JSON writes 64-bit integers as strings.
fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .to_string()
}

fn attrs(kvs: &[KeyValue]) -> Vec<Json> {
    kvs.iter()
        .map(|kv| attr(kv.key.as_str(), &kv.value))
        .collect()
}

fn attr(key: &str, v: &OtelValue) -> Json {
    let value = match v {
        OtelValue::Bool(b) => json!({ "boolValue": b }),
        OtelValue::I64(i) => json!({ "intValue": i.to_string() }),
        OtelValue::F64(f) => json!({ "doubleValue": f }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": value })
}
