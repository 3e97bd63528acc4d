//! `collector --flowcollector NAME`: the collector follows the cluster's
//! FlowCollector resource. `spec.agent.ebpf` goes to every agent over the
//! gRPC connection it holds (agents with `--config-from-collector` apply it
//! without restarting and report); `spec.processor`'s live parts
//! (`clusterName`, `subnetLabels`) apply to the running pipeline at once,
//! any other change waits for a restart. What was applied, and what could
//! not be and why, is written into the resource's `status.conditions`.

use crate::processor_args::{LIVE_PROCESSOR_KEYS, ProcessorArgs, restart_keys};
use flowlens_config::{AgentOverrides, AgentSettings, FlowCollectorFile, parse_config};
use flowlens_kube::flowcollector::{self, Seen};
use flowlens_pipeline::Processor;
use flowlens_wire::agent_config::{AgentConfigHub, AgentReport};
use flowlens_wire::agentconfig::AgentSpec;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const AGENTS: &str = "AgentConfigApplied";
pub const PROCESSOR: &str = "ProcessorConfigApplied";
pub const READY: &str = "Ready";

/// One entry of `status.conditions` (metav1.Condition).
#[derive(Debug, Clone, PartialEq)]
struct Condition {
    status: &'static str,
    reason: String,
    message: String,
}

/// Follows one FlowCollector and applies it.
pub struct FlowCollectorWatch {
    name: String,
    client: flowlens_kube::Client,
    hub: AgentConfigHub,
    processor: Arc<Processor>,
    args: Arc<ProcessorArgs>,
    /// `spec.processor` as the pipeline was built from it.
    started: Option<FlowCollectorFile>,
    /// The generation seen last, and whether its agent part was sent.
    generation: u64,
    published: bool,
    conditions: BTreeMap<&'static str, (Condition, String)>,
}

impl FlowCollectorWatch {
    pub fn new(
        name: String,
        client: flowlens_kube::Client,
        hub: AgentConfigHub,
        processor: Arc<Processor>,
        args: Arc<ProcessorArgs>,
        started: Option<FlowCollectorFile>,
    ) -> FlowCollectorWatch {
        FlowCollectorWatch {
            name,
            client,
            hub,
            processor,
            args,
            started,
            generation: 0,
            published: false,
            conditions: BTreeMap::new(),
        }
    }

    /// Runs until the runtime ends.
    pub async fn run(mut self) {
        let (seen_tx, mut seen) = tokio::sync::mpsc::channel(16);
        tokio::spawn(flowcollector::watch(
            self.client.clone(),
            self.name.clone(),
            seen_tx,
        ));
        let mut reported = self.hub.reported();
        loop {
            tokio::select! {
                what = seen.recv() => match what {
                    Some(Seen::Object(object)) => self.apply(&object).await,
                    Some(Seen::Gone) => {
                        tracing::info!(
                            name = %self.name,
                            "FlowCollector absent: the settings in use stay"
                        );
                        // One made again starts at generation 1 anew.
                        self.generation = 0;
                        self.conditions.clear();
                    }
                    Some(Seen::Error(e)) => {
                        tracing::warn!(name = %self.name, "FlowCollector watch: {e} (retrying)")
                    }
                    None => return,
                },
                changed = reported.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.agents_reported();
                    self.write().await;
                }
            }
        }
    }

    async fn apply(&mut self, object: &Value) {
        let generation = object["metadata"]["generation"].as_u64().unwrap_or(0);
        // Status writes (ours among them) change no generation: nothing to
        // apply again.
        if generation == self.generation && !self.conditions.is_empty() {
            return;
        }
        self.generation = generation;
        let text = object.to_string();
        let source = format!("FlowCollector {}", self.name);
        match parse_config(&text, &source) {
            Err(e) => {
                let message = e.to_string();
                self.set(AGENTS, "False", "InvalidSpec", &message);
                self.set(PROCESSOR, "False", "InvalidSpec", &message);
            }
            Ok(file) => {
                self.apply_agents(&file, text, source);
                self.apply_processor(&file);
            }
        }
        self.write().await;
    }

    fn apply_agents(&mut self, file: &FlowCollectorFile, text: String, source: String) {
        match AgentSettings::resolve(Some(file), &AgentOverrides::default()) {
            Err(e) => {
                self.published = false;
                self.set(AGENTS, "False", "InvalidAgentSpec", &e.to_string());
            }
            Ok(_) => {
                self.hub.publish(AgentSpec {
                    generation: self.generation,
                    resource_json: text,
                    source,
                });
                self.published = true;
                self.agents_reported();
            }
        }
    }

    fn apply_processor(&mut self, file: &FlowCollectorFile) {
        let live = match self.args.live(file) {
            Ok(live) => live,
            Err(e) => {
                return self.set(
                    PROCESSOR,
                    "False",
                    "InvalidProcessorSpec",
                    &format!("{e:#}"),
                );
            }
        };
        self.processor
            .set_cluster_name(live.cluster_name.as_deref());
        self.processor.set_subnets(live.subnets);
        let waiting = restart_keys(self.started.as_ref(), file);
        if waiting.is_empty() {
            let message = format!("applied ({})", LIVE_PROCESSOR_KEYS.join(", "));
            self.set(PROCESSOR, "True", "Applied", &message);
        } else {
            let message = format!(
                "{} changed: applied when the collector restarts ({} applied now)",
                waiting.join(", "),
                LIVE_PROCESSOR_KEYS.join(", ")
            );
            self.set(PROCESSOR, "False", "RestartRequired", &message);
        }
    }

    /// The agents' condition from their reports of the current generation.
    fn agents_reported(&mut self) {
        if !self.published {
            return;
        }
        let reports = self.hub.reports();
        let current: Vec<(&String, &AgentReport)> = reports
            .iter()
            .filter(|(_, r)| r.generation == self.generation)
            .collect();
        let failed: Vec<String> = current
            .iter()
            .filter(|(_, r)| !r.applied)
            .map(|(node, r)| format!("{node}: {}", r.error))
            .collect();
        let applied = current.iter().filter(|(_, r)| r.applied).count();
        let generation = self.generation;
        if !failed.is_empty() {
            let message = format!(
                "generation {generation}: {} of {} agents could not apply it (they keep their previous settings): {}",
                failed.len(),
                reports.len(),
                failed.join("; ")
            );
            self.set(AGENTS, "False", "AgentRejected", &message);
        } else if applied > 0 && applied == reports.len() {
            let message = format!("generation {generation} applied by {applied} agents");
            self.set(AGENTS, "True", "Applied", &message);
        } else {
            let message = format!(
                "generation {generation} sent; applied by {applied} of {} agents so far",
                reports.len()
            );
            self.set(AGENTS, "Unknown", "Applying", &message);
        }
    }

    fn set(&mut self, kind: &'static str, status: &'static str, reason: &str, message: &str) {
        let condition = Condition {
            status,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        // The transition time moves only when the status does.
        let since = match self.conditions.get(kind) {
            Some((old, since)) if old.status == status => since.clone(),
            _ => flowcollector::api_time_now(),
        };
        self.conditions.insert(kind, (condition, since));
    }

    async fn write(&mut self) {
        let ready = [AGENTS, PROCESSOR].iter().all(|k| {
            self.conditions
                .get(k)
                .is_some_and(|(c, _)| c.status == "True")
        });
        if ready {
            self.set(READY, "True", "Applied", "every setting is applied");
        } else {
            self.set(READY, "False", "NotApplied", "see the other conditions");
        }
        let conditions: Vec<Value> = self
            .conditions
            .iter()
            .map(|(kind, (c, since))| {
                json!({"type": kind, "status": c.status, "reason": c.reason,
                       "message": c.message, "lastTransitionTime": since,
                       "observedGeneration": self.generation})
            })
            .collect();
        let status = json!({"observedGeneration": self.generation, "conditions": conditions});
        if let Err(e) = flowcollector::set_status(self.client.clone(), &self.name, status).await {
            tracing::warn!(name = %self.name, "writing the FlowCollector's status: {e:#}");
        }
    }
}

/// The FlowCollector `name` now, as a config file (None when absent).
pub async fn fetch(
    client: flowlens_kube::Client,
    name: &str,
) -> anyhow::Result<Option<FlowCollectorFile>> {
    let Some(object) = flowcollector::get(client, name).await? else {
        return Ok(None);
    };
    let file = parse_config(&object.to_string(), &format!("FlowCollector {name}"))?;
    Ok(Some(file))
}
