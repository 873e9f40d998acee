//! The registry's refusals, each with the HTTP status and the error code
//! Confluent's Schema Registry answers with, so its clients react as they
//! would there (a 404 with 40401 is "subject not found" to them).

use std::fmt;

/// A refusal: HTTP status, Confluent error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// The HTTP status.
    pub status: u16,
    /// Confluent's `error_code` (the status followed by a detail digit or two).
    pub code: u32,
    /// What was wrong, for people.
    pub message: String,
}

impl RegistryError {
    fn new(status: u16, code: u32, message: String) -> RegistryError {
        RegistryError {
            status,
            code,
            message,
        }
    }

    /// 40401.
    pub fn subject_not_found(subject: &str) -> RegistryError {
        Self::new(404, 40401, format!("Subject '{subject}' not found."))
    }

    /// 40402.
    pub fn version_not_found(subject: &str, version: &str) -> RegistryError {
        Self::new(
            404,
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }

    /// 40403.
    pub fn schema_not_found(what: String) -> RegistryError {
        Self::new(404, 40403, what)
    }

    /// 40404: a soft-deleted subject asked for without `deleted=true`.
    pub fn subject_soft_deleted(subject: &str) -> RegistryError {
        Self::new(
            404,
            40404,
            format!(
                "Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40405: a permanent delete of a subject that was not soft-deleted first.
    pub fn subject_not_soft_deleted(subject: &str) -> RegistryError {
        Self::new(
            404,
            40405,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        )
    }

    /// 40406: a version soft-deleted already.
    pub fn version_soft_deleted(subject: &str, version: u32) -> RegistryError {
        Self::new(
            404,
            40406,
            format!(
                "Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40407: a permanent delete of a version that was not soft-deleted first.
    pub fn version_not_soft_deleted(subject: &str, version: u32) -> RegistryError {
        Self::new(
            404,
            40407,
            format!(
                "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
            ),
        )
    }

    /// 40408: no subject-level compatibility configured.
    pub fn subject_level_not_configured(subject: &str) -> RegistryError {
        Self::new(
            404,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    /// 409: incompatible with earlier versions; the reasons are listed.
    pub fn incompatible(problems: &[String]) -> RegistryError {
        Self::new(
            409,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject: {}",
                problems.join("; ")
            ),
        )
    }

    /// 42201: the schema does not parse or check.
    pub fn invalid_schema(reason: String) -> RegistryError {
        Self::new(422, 42201, format!("Invalid schema: {reason}"))
    }

    /// 42202: a version that is not a number from 1 or `latest`.
    pub fn invalid_version(version: &str) -> RegistryError {
        Self::new(
            422,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    /// 42203: an unknown compatibility level.
    pub fn invalid_level(reason: String) -> RegistryError {
        Self::new(422, 42203, reason)
    }

    /// 42208: a subject name that is not accepted.
    pub fn invalid_subject(reason: String) -> RegistryError {
        Self::new(422, 42208, reason)
    }

    /// 422 (as Confluent's answer to a body it cannot map): a request body
    /// that is not what the route takes, or a value in it not accepted.
    pub fn invalid_request(reason: String) -> RegistryError {
        Self::new(422, 422, reason)
    }

    /// 40101: no credentials, or unknown ones.
    pub fn unauthenticated(reason: String) -> RegistryError {
        Self::new(401, 40101, reason)
    }

    /// 40301: an ACL does not allow it.
    pub fn forbidden(reason: String) -> RegistryError {
        Self::new(403, 40301, reason)
    }

    /// 50001: the store failed (a write or sync of the log).
    pub fn store(reason: String) -> RegistryError {
        Self::new(
            500,
            50001,
            format!("Error in the backend data store: {reason}"),
        )
    }

    /// 50003 (Brook's use): the broker is still starting or is stopping.
    pub fn unavailable(reason: String) -> RegistryError {
        Self::new(503, 50003, reason)
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error code {})", self.message, self.code)
    }
}

impl std::error::Error for RegistryError {}
