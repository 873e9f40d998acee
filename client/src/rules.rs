//! Routing rules (`brook.v1.Rules`): a rule reads a source topic inside the
//! broker and writes every record whose JSON value matches its event
//! pattern to its target topics, exactly once (docs/rules.md).

use brook_protocol::v1;

use crate::admin::Admin;
use crate::error::Result;

impl Admin {
    /// Creates a rule: the broker checks the pattern (reason
    /// `INVALID_PATTERN`, naming the place in it), that the topics exist and
    /// that no target is the source. A name taken by another definition is
    /// refused (reason `RULE_EXISTS`); the same definition again answers
    /// with the rule. Needs ALTER and READ on the source, WRITE on every
    /// target.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::proto::{InputTransform, RuleDefinition, RuleStart, TransformField};
    /// let rule = RuleDefinition {
    ///     name: "big-orders".into(),
    ///     source_topic: "orders".into(),
    ///     event_pattern: r#"{"detail":{"amount":[{"numeric":[">",100]}]}}"#.into(),
    ///     targets: vec!["big-orders".into()],
    ///     transform: Some(InputTransform {
    ///         fields: vec![TransformField {
    ///             name: "orderId".into(),
    ///             path: "$.detail.orderId".into(),
    ///         }],
    ///     }),
    ///     start: RuleStart::Earliest as i32,
    /// };
    /// let d = client.admin().create_rule(rule).await?;
    /// println!("big-orders is {:?}, {} records behind", d.state(), d.lag);
    /// # Ok(()) }
    /// ```
    pub async fn create_rule(&self, rule: v1::RuleDefinition) -> Result<v1::RuleDescription> {
        // Retrying is safe: the same definition twice is answered with the rule.
        let req = v1::CreateRuleRequest { rule: Some(rule) };
        Ok(self
            .client
            .retry(|| async { self.client.rules().create_rule(req.clone()).await })
            .await?
            .into_inner())
    }

    /// A rule's definition, state (with the reason when it is not running),
    /// counts and lag per partition. Needs DESCRIBE on the source topic.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let d = client.admin().describe_rule("big-orders").await?;
    /// println!("matched {}, forwarded {}, lag {}", d.matched, d.forwarded, d.lag);
    /// if !d.reason.is_empty() {
    ///     println!("stopped: {}", d.reason);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn describe_rule(&self, name: &str) -> Result<v1::RuleDescription> {
        let req = v1::DescribeRuleRequest { name: name.into() };
        Ok(self
            .client
            .retry(|| async { self.client.rules().describe_rule(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Every rule, or (`source_topic` given) the rules reading that topic.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// for d in client.admin().list_rules(Some("orders")).await? {
    ///     let name = d.rule.as_ref().map_or("", |r| r.name.as_str());
    ///     println!("{name}: {:?}, lag {}", d.state(), d.lag);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_rules(&self, source_topic: Option<&str>) -> Result<Vec<v1::RuleDescription>> {
        let req = v1::ListRulesRequest {
            source_topic: source_topic.unwrap_or_default().into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.rules().list_rules(req.clone()).await })
            .await?
            .into_inner()
            .rules)
    }

    /// Stops a rule delivering; it keeps its position. Needs ALTER on the
    /// source topic.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let d = client.admin().pause_rule("big-orders").await?;
    /// println!("paused, {} records behind", d.lag);
    /// # Ok(()) }
    /// ```
    pub async fn pause_rule(&self, name: &str) -> Result<v1::RuleDescription> {
        let req = v1::PauseRuleRequest { name: name.into() };
        Ok(self
            .client
            .retry(|| async { self.client.rules().pause_rule(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Makes a paused or failed rule deliver again from where it stopped (a
    /// failed rule tries the record that failed again). Needs ALTER on the
    /// source topic.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let d = client.admin().resume_rule("big-orders").await?;
    /// println!("now {:?}", d.state());
    /// # Ok(()) }
    /// ```
    pub async fn resume_rule(&self, name: &str) -> Result<v1::RuleDescription> {
        let req = v1::ResumeRuleRequest { name: name.into() };
        Ok(self
            .client
            .retry(|| async { self.client.rules().resume_rule(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Deletes a rule and its position; the records it delivered stay in
    /// the targets. Not retried: a repeated delete would answer
    /// `RULE_NOT_FOUND`. Needs ALTER on the source topic.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// client.admin().delete_rule("big-orders").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_rule(&self, name: &str) -> Result<()> {
        self.client
            .rules()
            .delete_rule(v1::DeleteRuleRequest { name: name.into() })
            .await?;
        Ok(())
    }
}
