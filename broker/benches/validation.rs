//! The cost of `full` JSON validation per payload, in one process: the
//! benchmark's 1 KiB order event (scripts/bench-schemas.sh) parsed into a
//! `serde_json::Value` and validated, against parsed onto simd-json's tape
//! and validated in place (`brook_broker::schemas::tape`), as the broker does.
//!
//! ```text
//! cargo bench -p brook --bench validation      # BROOK_BENCH_ITERATIONS (default 200000)
//! ```

use std::hint::black_box;
use std::time::Instant;

use brook_broker::schemas::tape::{TapeJson, TapeNode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The JSON Schema of the event (also scripts/bench-schemas.sh's).
const SCHEMA: &str = include_str!("order.schema.json");

/// The event of scripts/bench-schemas.sh, padded to 1 KiB.
fn event() -> Vec<u8> {
    let items: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"sku": "SKU-{i:05}", "name": "Widget model {i} in matte finish", "quantity": {}, "unit_price": {}}}"#,
                i % 3 + 1,
                12.5 + f64::from(i)
            )
        })
        .collect();
    let mut body = format!(
        r#"{{"order_id": "ord-1042", "customer_id": "cust-77", "placed_at": "2026-11-30T12:00:00Z", "currency": "EUR", "items": [{}], "shipping": {{"street": "1 Long Street", "city": "Amsterdam", "postcode": "1011AB", "country": "NL"}}, "total": 300.0, "note": "leave at the door"}}"#,
        items.join(", ")
    );
    while body.len() < 1019 {
        body.push(' ');
    }
    body.into_bytes()
}

/// Nanoseconds per call of `f`, over `n` calls.
fn time(n: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let n: u32 = std::env::var("BROOK_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let payload = event();
    let serde = jsonschema::options().build(&schema).unwrap();
    let tape = jsonschema::options_for::<TapeJson>()
        .build(&schema)
        .unwrap();

    let value_parse = time(n, || {
        let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        black_box(doc);
    });
    let value_both = time(n, || {
        let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert!(serde.is_valid(&doc));
    });
    let mut copy = Vec::new();
    let mut buffers = simd_json::Buffers::new(4096);
    let tape_parse = time(n, || {
        copy.clear();
        copy.extend_from_slice(&payload);
        let t = simd_json::to_tape_with_buffers(&mut copy, &mut buffers).unwrap();
        black_box(t);
    });
    let tape_both = time(n, || {
        copy.clear();
        copy.extend_from_slice(&payload);
        let t = simd_json::to_tape_with_buffers(&mut copy, &mut buffers).unwrap();
        assert!(tape.is_valid(TapeNode::root(&t.0).unwrap()));
    });
    println!("{} bytes, {n} iterations, ns per payload:", payload.len());
    println!("  serde_json::Value  parse {value_parse:>6.0}  parse+validate {value_both:>6.0}");
    println!("  simd-json tape     parse {tape_parse:>6.0}  parse+validate {tape_both:>6.0}");
    println!(
        "  tape / Value, parse+validate: {:.2}",
        tape_both / value_both
    );
}
