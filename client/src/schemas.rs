//! The schema registry (`brook.v1.Schemas`): subjects, versions, global
//! schema ids and compatibility levels (docs/schemas.md).

use brook_protocol::v1;

use crate::admin::Admin;
use crate::error::Result;

impl Admin {
    /// Registers `schema` (of `schema_type`: `JSON` or `AVRO`) under
    /// `subject`: its id and version, the existing ones if the subject has
    /// it. An incompatible schema is refused (reason `SCHEMA_INCOMPATIBLE`,
    /// every problem in the message). Needs ALTER on the cluster.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let schema = r#"{"type":"object","properties":{"order_id":{"type":"string"}},"required":["order_id"]}"#;
    /// let r = client.admin().register_schema("orders-value", "JSON", schema).await?;
    /// println!("schema id {} is version {}", r.id, r.version);
    /// # Ok(()) }
    /// ```
    pub async fn register_schema(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
    ) -> Result<v1::RegisterSchemaResponse> {
        let req = v1::RegisterSchemaRequest {
            subject: subject.into(),
            schema: schema.into(),
            schema_type: schema_type.into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().register_schema(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Subjects with a live version (or any, with `include_deleted`).
    pub async fn list_subjects(&self, include_deleted: bool) -> Result<Vec<String>> {
        let req = v1::ListSubjectsRequest { include_deleted };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().list_subjects(req).await })
            .await?
            .into_inner()
            .subjects)
    }

    /// A subject's version numbers, oldest first.
    pub async fn list_schema_versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<u32>> {
        let req = v1::ListVersionsRequest {
            subject: subject.into(),
            include_deleted,
        };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().list_versions(req.clone()).await })
            .await?
            .into_inner()
            .versions)
    }

    /// One version of a subject (`version` 0: the latest).
    pub async fn schema_version(&self, subject: &str, version: u32) -> Result<v1::SchemaVersion> {
        let req = v1::GetSchemaVersionRequest {
            subject: subject.into(),
            version,
            include_deleted: version != 0,
        };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().get_schema_version(req.clone()).await })
            .await?
            .into_inner())
    }

    /// A schema by its global id.
    pub async fn schema_by_id(&self, id: u32) -> Result<v1::SchemaVersion> {
        let req = v1::GetSchemaByIdRequest { id };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().get_schema_by_id(req).await })
            .await?
            .into_inner())
    }

    /// Whether `schema` would be accepted under `subject` (`version` 0: as a
    /// registration checks it; else against that version), and the problems.
    pub async fn check_schema(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        version: u32,
    ) -> Result<v1::CheckCompatibilityResponse> {
        let req = v1::CheckCompatibilityRequest {
            subject: subject.into(),
            schema: schema.into(),
            schema_type: schema_type.into(),
            version,
        };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().check_compatibility(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Deletes a version (`version` 0: every version of the subject), softly
    /// or, after a soft delete, for good. Returns the versions deleted.
    pub async fn delete_schema(
        &self,
        subject: &str,
        version: u32,
        permanent: bool,
    ) -> Result<Vec<u32>> {
        let req = v1::DeleteSchemaRequest {
            subject: subject.into(),
            version,
            permanent,
        };
        Ok(self
            .client
            .schemas()
            .delete_schema(req)
            .await?
            .into_inner()
            .versions)
    }

    /// A subject's compatibility level (`subject` empty: the default).
    pub async fn schema_compatibility(&self, subject: &str) -> Result<v1::CompatibilityLevel> {
        let req = v1::GetCompatibilityRequest {
            subject: subject.into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().get_compatibility(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Sets a subject's level (`subject` empty: the default); `level` empty
    /// clears a subject's or resets the default to BACKWARD.
    pub async fn set_schema_compatibility(
        &self,
        subject: &str,
        level: &str,
    ) -> Result<v1::CompatibilityLevel> {
        let req = v1::SetCompatibilityRequest {
            subject: subject.into(),
            level: level.into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().set_compatibility(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Binds `topic` to subjects (docs/schemas.md, "Validation at the
    /// broker"): `mode` `id` or `full` checks every record produced to it
    /// from now on, `off` keeps the binding without checking; `mode` empty
    /// removes it. Needs ALTER on the topic.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// client.admin().set_topic_schema("orders", "orders-value", "", "full").await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_topic_schema(
        &self,
        topic: &str,
        value_subject: &str,
        key_subject: &str,
        mode: &str,
    ) -> Result<v1::TopicSchema> {
        self.set_topic_binding(v1::TopicSchema {
            topic: topic.into(),
            value_subject: value_subject.into(),
            key_subject: key_subject.into(),
            mode: mode.into(),
            ..Default::default()
        })
        .await
    }

    /// Binds a topic with every setting of [`v1::TopicSchema`], such as
    /// `on_invalid: "dead-letter"`: records that fail go to the topic's
    /// dead-letter topic (`dead_letter_topic`, default `<topic>.dlq`)
    /// and the rest of each request is stored. Needs ALTER on the topic
    /// and, to dead-letter, WRITE on the dead-letter topic.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::proto::TopicSchema;
    /// client
    ///     .admin()
    ///     .set_topic_binding(TopicSchema {
    ///         topic: "orders".into(),
    ///         value_subject: "orders-value".into(),
    ///         mode: "full".into(),
    ///         on_invalid: "dead-letter".into(),
    ///         ..Default::default()
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_topic_binding(&self, binding: v1::TopicSchema) -> Result<v1::TopicSchema> {
        Ok(self
            .client
            .retry(|| async {
                self.client
                    .schemas()
                    .set_topic_schema(binding.clone())
                    .await
            })
            .await?
            .into_inner())
    }

    /// `topic`'s binding (`mode` empty: none).
    pub async fn topic_schema(&self, topic: &str) -> Result<v1::TopicSchema> {
        let req = v1::GetTopicSchemaRequest {
            topic: topic.into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.schemas().get_topic_schema(req.clone()).await })
            .await?
            .into_inner())
    }
}
