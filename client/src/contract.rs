//! Event contracts at the client boundaries: typed values (serde) written
//! as JSON framed with a registered schema id, exactly as Confluent's
//! serializers frame them (magic byte 0, the id as 4 bytes big-endian, the
//! JSON), validated against the JSON Schema before they are sent and again
//! when they are received (docs/schemas.md, "The Rust client").
//!
//! ```no_run
//! # async fn demo(client: brook_client::Client) -> Result<(), brook_client::ContractError> {
//! use brook_client::{JsonDeserializer, JsonSerializer};
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct OrderPlaced { order_id: String, total: f64 }
//! let schema = r#"{"type":"object","properties":{"order_id":{"type":"string"},"total":{"type":"number"}},"required":["order_id","total"]}"#;
//! let serialize = JsonSerializer::<OrderPlaced>::register(&client, "orders-value", schema).await?;
//! let value = serialize.serialize(&OrderPlaced { order_id: "o-1".into(), total: 12.5 })?;
//! // ... send `value` with the producer; on the other side:
//! let deserialize = JsonDeserializer::<OrderPlaced>::new(&client);
//! let order: OrderPlaced = deserialize.deserialize(&value).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;

/// Why a value could not be written or read under its contract.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The schema registry refused or failed (registration, lookup).
    #[error("schema registry: {0}")]
    Registry(#[from] crate::Error),
    /// The schema the registry holds is not a JSON Schema this client can use.
    #[error("schema {id} cannot be used: {reason}")]
    BadSchema {
        /// Its id.
        id: u32,
        /// Why.
        reason: String,
    },
    /// The bytes are not framed with a schema id.
    #[error("the value does not start with a schema id (magic byte 0 and 4 bytes)")]
    NotFramed,
    /// The value does not follow the schema.
    #[error("the value does not follow schema {schema_id} at {path}: {reason}")]
    Invalid {
        /// The schema id it was checked against.
        schema_id: u32,
        /// Where (a JSON pointer).
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The value is not JSON, or not the type asked for.
    #[error("the value under schema {schema_id} does not decode: {reason}")]
    Decode {
        /// The schema id it carried.
        schema_id: u32,
        /// Why.
        reason: String,
    },
}

/// A compiled JSON Schema.
type Compiled = Arc<jsonschema::Validator>;

fn compile(id: u32, text: &str) -> Result<Compiled, ContractError> {
    let bad = |reason: String| ContractError::BadSchema { id, reason };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let mut options = jsonschema::options();
    if value.get("$schema").is_none() {
        options = options.with_draft(jsonschema::Draft::Draft7);
    }
    options
        .build(&value)
        .map(Arc::new)
        .map_err(|e| bad(e.to_string()))
}

fn check(
    id: u32,
    validator: &jsonschema::Validator,
    doc: &serde_json::Value,
) -> Result<(), ContractError> {
    if validator.is_valid(doc) {
        return Ok(());
    }
    let (path, reason) = match validator.iter_errors(doc).next() {
        Some(e) => (e.instance_path().to_string(), e.to_string()),
        None => (String::new(), "invalid".into()),
    };
    Err(ContractError::Invalid {
        schema_id: id,
        path: if path.is_empty() { "/".into() } else { path },
        reason,
    })
}

/// Writes values of `T` under a registered JSON Schema: each is checked
/// before it is handed to the producer, so an invalid event never leaves
/// the service.
pub struct JsonSerializer<T> {
    id: u32,
    validator: Compiled,
    _values: PhantomData<fn(&T)>,
}

impl<T: Serialize> JsonSerializer<T> {
    /// Registers `schema` under `subject` (or finds it there: the same
    /// schema keeps its id) and compiles it. A schema incompatible with the
    /// subject's versions is refused by the registry.
    pub async fn register(
        client: &Client,
        subject: &str,
        schema: &str,
    ) -> Result<Self, ContractError> {
        let registered = client
            .admin()
            .register_schema(subject, "JSON", schema)
            .await?;
        Ok(JsonSerializer {
            id: registered.id,
            validator: compile(registered.id, schema)?,
            _values: PhantomData,
        })
    }

    /// The schema id every value carries.
    pub fn schema_id(&self) -> u32 {
        self.id
    }

    /// `value` as framed JSON, or why it does not follow the schema.
    pub fn serialize(&self, value: &T) -> Result<Bytes, ContractError> {
        let doc = serde_json::to_value(value).map_err(|e| ContractError::Decode {
            schema_id: self.id,
            reason: e.to_string(),
        })?;
        check(self.id, &self.validator, &doc)?;
        let mut out = Vec::with_capacity(64);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        serde_json::to_writer(&mut out, &doc).map_err(|e| ContractError::Decode {
            schema_id: self.id,
            reason: e.to_string(),
        })?;
        Ok(out.into())
    }
}

/// Reads values of `T` written under any registered JSON Schema: the id
/// in each value names the schema (fetched once, then cached), the value
/// is checked against it, then decoded. An invalid record is an error the
/// handler sees, so a queue consumer can reject it to the dead-letter topic.
pub struct JsonDeserializer<T> {
    client: Client,
    schemas: Mutex<HashMap<u32, Compiled>>,
    _values: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonDeserializer<T> {
    /// A deserializer that fetches schemas through `client`.
    pub fn new(client: &Client) -> Self {
        JsonDeserializer {
            client: client.clone(),
            schemas: Mutex::new(HashMap::new()),
            _values: PhantomData,
        }
    }

    /// Checks and decodes one framed value.
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<T, ContractError> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(ContractError::NotFramed);
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let validator = self.schema(id).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes[5..]).map_err(|e| ContractError::Decode {
                schema_id: id,
                reason: e.to_string(),
            })?;
        check(id, &validator, &doc)?;
        serde_json::from_value(doc).map_err(|e| ContractError::Decode {
            schema_id: id,
            reason: e.to_string(),
        })
    }

    async fn schema(&self, id: u32) -> Result<Compiled, ContractError> {
        if let Some(v) = self.cached(id) {
            return Ok(v);
        }
        let found = self.client.admin().schema_by_id(id).await?;
        if found.schema_type != "JSON" {
            return Err(ContractError::BadSchema {
                id,
                reason: format!("it is {}, not JSON", found.schema_type),
            });
        }
        let compiled = compile(id, &found.schema)?;
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&compiled));
        Ok(compiled)
    }

    fn cached(&self, id: u32) -> Option<Compiled> {
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}
