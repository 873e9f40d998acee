//! The `brook.v1.Rules` service: thin; checks names, topics and rights,
//! calls [`Rules`], describes rules with their lag.
//!
//! Rights (resource TOPIC): creating a rule needs ALTER on its source
//! topic, READ on it and WRITE on every target (the rule writes with the
//! broker's authority afterwards); deleting, pausing and resuming need
//! ALTER on the source; describing and listing need DESCRIBE on it. A rule
//! that does not exist is NOT_FOUND to callers who may describe the
//! cluster, PERMISSION_DENIED to others.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_protocol::v1::{self, rules_server};
use tonic::{Request, Response, Status};

use super::engine::{RuleStatus, Rules};
use crate::auth::acl::ResourceType::Cluster;
use crate::auth::acl::{CLUSTER, Operation};
use crate::error::{ApiError, ApiResult, Reason};
use crate::request::RequestContext;
use crate::state::Broker;

/// Longest rule name.
const MAX_NAME: usize = 200;
/// Most targets of one rule.
const MAX_TARGETS: usize = 64;

/// Implements `brook.v1.Rules`.
pub struct RulesService {
    broker: Arc<Broker>,
}

impl RulesService {
    /// A service over the shared broker state.
    pub fn new(broker: Arc<Broker>) -> Self {
        RulesService { broker }
    }

    fn rules(&self) -> ApiResult<&Arc<Rules>> {
        self.broker.rules()
    }

    /// Names the rule to the request layer and checks its name.
    fn name<T>(&self, req: &Request<T>, name: &str) -> ApiResult<()> {
        RequestContext::of(req).resource(name);
        check_rule_name(name)
    }

    /// A rule's description, with the lag read from its source now.
    fn describe(&self, name: &str) -> ApiResult<v1::RuleDescription> {
        let status = self.rules()?.status(name)?;
        Ok(describe(&self.broker, status))
    }

    /// Checks `op` on the rule's source topic. Whether a rule that does
    /// not exist exists is the cluster's to tell: without DESCRIBE on the
    /// cluster the answer is PERMISSION_DENIED, not RULE_NOT_FOUND.
    fn on_source<T>(&self, req: &Request<T>, name: &str, op: Operation) -> ApiResult<()> {
        match self.rules()?.status(name) {
            Ok(s) => self
                .broker
                .authorize_topic(req, op, &s.definition.source_topic),
            Err(missing) => {
                let caller = crate::auth::Caller::of(req);
                (self.broker.auth).authorize(&caller, Operation::Describe, Cluster, CLUSTER)?;
                Err(missing)
            }
        }
    }
}

/// Refuses a rule name outside 1-200 characters of `[A-Za-z0-9._-]`.
pub fn check_rule_name(name: &str) -> ApiResult<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(allowed) {
        return Err(ApiError::invalid(format!(
            "rule name {:?} must be 1 to {MAX_NAME} characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            crate::error::shortened(name.to_string(), 64)
        ))
        .with("rule", crate::error::shortened(name.to_string(), 64)));
    }
    Ok(())
}

/// A rule as the API shows it: progress and lag per source partition.
pub fn describe(broker: &Broker, s: RuleStatus) -> v1::RuleDescription {
    let mut partitions = Vec::new();
    if let Ok(topic) = broker.topic(&s.definition.source_topic) {
        for (n, p) in topic.partitions() {
            let progress = s.partitions.get(&n);
            let position = match progress {
                Some(at) => at.position.max(p.log_start_offset()),
                // Not read yet: from the first record.
                None => p.log_start_offset(),
            };
            let end = p.high_watermark();
            partitions.push(v1::RulePartition {
                partition: n,
                position,
                log_end_offset: end,
                lag: end.saturating_sub(position),
            });
        }
    }
    v1::RuleDescription {
        matched: s.partitions.values().map(|p| p.matched).sum(),
        forwarded: s.partitions.values().map(|p| p.forwarded).sum(),
        failed: s.failed,
        lag: partitions.iter().map(|p| p.lag).sum(),
        partitions,
        state: s.state as i32,
        reason: s.reason,
        created_ms: s.created_ms,
        rule: Some(s.definition),
    }
}

impl RulesService {
    /// Checks a definition against the topics and returns where the rule
    /// starts in each source partition.
    fn check_definition<T>(
        &self,
        req: &Request<T>,
        d: &v1::RuleDefinition,
    ) -> ApiResult<BTreeMap<u32, u64>> {
        self.broker
            .authorize_topic(req, Operation::Alter, &d.source_topic)?;
        self.broker
            .authorize_topic(req, Operation::Read, &d.source_topic)?;
        if d.targets.is_empty() {
            return Err(ApiError::invalid("a rule needs at least one target topic"));
        }
        if d.targets.len() > MAX_TARGETS {
            return Err(ApiError::invalid(format!(
                "a rule has at most {MAX_TARGETS} targets, found {}",
                d.targets.len()
            )));
        }
        let source = self.broker.topic(&d.source_topic)?;
        for (i, target) in d.targets.iter().enumerate() {
            if *target == d.source_topic {
                return Err(ApiError::invalid(format!(
                    "target {target:?} is the rule's source: a rule cannot write what it reads"
                ))
                .with("topic", target));
            }
            if d.targets[..i].contains(target) {
                return Err(
                    ApiError::invalid(format!("target {target:?} is named twice"))
                        .with("topic", target),
                );
            }
            self.broker.authorize_topic(req, Operation::Write, target)?;
            self.broker.topic(target)?;
        }
        let start = v1::RuleStart::try_from(d.start)
            .map_err(|_| ApiError::invalid(format!("unknown start {}", d.start)))?;
        Ok(source
            .partitions()
            .into_iter()
            .map(|(n, p)| match start {
                v1::RuleStart::Earliest => (n, p.log_start_offset()),
                _ => (n, p.high_watermark()),
            })
            .collect())
    }
}

#[tonic::async_trait]
impl rules_server::Rules for RulesService {
    async fn create_rule(
        &self,
        req: Request<v1::CreateRuleRequest>,
    ) -> Result<Response<v1::RuleDescription>, Status> {
        let d = req.get_ref().rule.clone().unwrap_or_default();
        self.name(&req, &d.name)?;
        let positions = self.check_definition(&req, &d)?;
        let name = d.name.clone();
        let created = self.rules()?.create(d, positions, brook_storage::now_ms());
        if let Err(e) = created {
            if e.reason() == Reason::RuleExists {
                // A rule on a topic the caller may not see stays unseen:
                // PERMISSION_DENIED, as DescribeRule would answer.
                self.on_source(&req, &name, Operation::Describe)?;
            }
            return Err(e.into());
        }
        Ok(Response::new(self.describe(&name)?))
    }

    async fn describe_rule(
        &self,
        req: Request<v1::DescribeRuleRequest>,
    ) -> Result<Response<v1::RuleDescription>, Status> {
        let name = &req.get_ref().name;
        self.name(&req, name)?;
        self.on_source(&req, name, Operation::Describe)?;
        Ok(Response::new(self.describe(name)?))
    }

    async fn list_rules(
        &self,
        req: Request<v1::ListRulesRequest>,
    ) -> Result<Response<v1::ListRulesResponse>, Status> {
        let only = &req.get_ref().source_topic;
        let rules = self.rules()?;
        let mut out = Vec::new();
        for name in rules.names() {
            let Ok(status) = rules.status(&name) else {
                continue; // deleted meanwhile
            };
            let source = &status.definition.source_topic;
            if !only.is_empty() && source != only {
                continue;
            }
            if self
                .broker
                .authorize_topic(&req, Operation::Describe, source)
                .is_err()
            {
                continue;
            }
            out.push(describe(&self.broker, status));
        }
        Ok(Response::new(v1::ListRulesResponse { rules: out }))
    }

    async fn pause_rule(
        &self,
        req: Request<v1::PauseRuleRequest>,
    ) -> Result<Response<v1::RuleDescription>, Status> {
        let name = &req.get_ref().name;
        self.name(&req, name)?;
        self.on_source(&req, name, Operation::Alter)?;
        // A failed rule's reason is what an operator needs before resuming.
        let reason = match self.rules()?.status(name) {
            Ok(s) if s.state == v1::RuleState::Failed => {
                format!("paused by PauseRule after it failed: {}", s.reason)
            }
            Ok(s) if s.state == v1::RuleState::Paused => s.reason,
            _ => "paused by PauseRule".to_string(),
        };
        self.rules()?
            .set_state(name, v1::RuleState::Paused, reason, None)?;
        Ok(Response::new(self.describe(name)?))
    }

    async fn resume_rule(
        &self,
        req: Request<v1::ResumeRuleRequest>,
    ) -> Result<Response<v1::RuleDescription>, Status> {
        let name = &req.get_ref().name;
        self.name(&req, name)?;
        self.on_source(&req, name, Operation::Alter)?;
        self.rules()?
            .set_state(name, v1::RuleState::Running, String::new(), None)?;
        Ok(Response::new(self.describe(name)?))
    }

    async fn delete_rule(
        &self,
        req: Request<v1::DeleteRuleRequest>,
    ) -> Result<Response<v1::DeleteRuleResponse>, Status> {
        let name = &req.get_ref().name;
        self.name(&req, name)?;
        self.on_source(&req, name, Operation::Alter)?;
        self.rules()?.delete(name)?;
        Ok(Response::new(v1::DeleteRuleResponse {}))
    }
}
