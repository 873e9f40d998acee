//! Avro compatibility: Avro's own reader/writer schema resolution rules,
//! as `apache-avro` implements them (`SchemaCompatibility::can_read`).

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

/// The problems that stop data written with `writer` from being read with
/// `reader`; empty when it can be.
pub fn reader_accepts_writer(reader: &Schema, writer: &Schema) -> Vec<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("#: READER_CANNOT_READ_WRITER: {e}")],
    }
}
