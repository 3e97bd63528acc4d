//! `agent --config-from-collector`: the capture settings of the cluster's
//! FlowCollector (`spec.agent.ebpf`), sent by the collector over gRPC, are
//! applied without restarting the process: programs for the new settings
//! are loaded while the running ones go on; then the running ones detach
//! and evict every flow they hold (sent as usual), and the new ones attach
//! at once; the connection to the collector, the exporter's buffer and the
//! counters carry on. Packets in the moment between detach and attach are
//! not seen. The agent's flags still win
//! over the resource. Each generation is reported back — applied, or why
//! not (the agent then keeps the settings it runs with).

use flowlens_config::{AgentOverrides, AgentSettings, parse_config};
use flowlens_wire::agent_config::AgentConfigSource;
use flowlens_wire::agentconfig::AgentSpec;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the agent did with the collector's settings, for /status and
/// /metrics (`config` section).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStats {
    /// The generation running (0: the agent's own settings).
    pub generation: u64,
    /// Generations applied, and refused (the agent kept its settings).
    pub applied: u64,
    pub refused: u64,
    pub last_error: String,
}

/// What to do when the running programs stop.
pub enum Next<A> {
    Stop,
    /// Replace them by these, built for the settings of this generation.
    Apply(A, u64),
}

pub struct Reloader {
    source: AgentConfigSource,
    overrides: AgentOverrides,
    specs: mpsc::Receiver<AgentSpec>,
    /// `spec.agent` of the generation running, and of the one being
    /// applied.
    running: Option<Value>,
    pending: Option<Value>,
    /// `spec.agent` of the last generation this agent could not apply, and
    /// why: sent again, it is refused again without another attempt.
    refused: Option<(Value, String)>,
    stats: Arc<Mutex<ReloadStats>>,
}

impl Reloader {
    /// Starts watching the collector's settings.
    pub fn start(
        source: AgentConfigSource,
        overrides: AgentOverrides,
        backoff_max: Duration,
    ) -> Reloader {
        let (specs_tx, specs) = mpsc::channel(4);
        tokio::spawn(source.clone().watch(specs_tx, backoff_max));
        Reloader {
            source,
            overrides,
            specs,
            running: None,
            pending: None,
            refused: None,
            stats: Arc::default(),
        }
    }

    /// The counters, as they change.
    pub fn stats(&self) -> Arc<Mutex<ReloadStats>> {
        self.stats.clone()
    }

    /// Waits until `stopped`, or a generation that changes the settings and
    /// for which `build` makes programs — while the running ones go on.
    /// Generations that change nothing, or that cannot be applied, are
    /// reported as they come.
    pub async fn next<A>(
        &mut self,
        stopped: &mut watch::Receiver<bool>,
        build: impl Fn(&AgentSettings) -> anyhow::Result<A>,
    ) -> Next<A> {
        loop {
            let spec = tokio::select! {
                _ = stopped.wait_for(|s| *s) => return Next::Stop,
                spec = self.specs.recv() => spec,
            };
            let Some(spec) = spec else {
                let _ = stopped.wait_for(|s| *s).await;
                return Next::Stop;
            };
            let agent_part = serde_json::from_str::<Value>(&spec.resource_json)
                .map(|r| r["spec"]["agent"].clone())
                .unwrap_or(Value::Null);
            if self.running.as_ref() == Some(&agent_part) {
                self.report(spec.generation, None).await;
                continue;
            }
            if let Some((refused, why)) = &self.refused
                && *refused == agent_part
            {
                let why = why.clone();
                self.report(spec.generation, Some(why)).await;
                continue;
            }
            let settings = parse_config(&spec.resource_json, &spec.source)
                .and_then(|file| AgentSettings::resolve(Some(&file), &self.overrides));
            match settings {
                Ok(settings) => {
                    // The resource has the collector's part too.
                    let warnings = settings.warnings.iter();
                    for warning in warnings.filter(|w| !w.starts_with("spec.processor ")) {
                        tracing::warn!("{}: {warning}", spec.source);
                    }
                    match build(&settings) {
                        Ok(built) => {
                            self.pending = Some(agent_part);
                            return Next::Apply(built, spec.generation);
                        }
                        Err(e) => {
                            let why = format!("{e:#}");
                            tracing::warn!(
                                generation = spec.generation,
                                "settings from the collector not applied: {why}"
                            );
                            self.refused = Some((agent_part, why.clone()));
                            self.report(spec.generation, Some(why)).await;
                        }
                    }
                }
                Err(e) => {
                    self.refused = Some((agent_part, e.to_string()));
                    self.report(spec.generation, Some(e.to_string())).await;
                }
            }
        }
    }

    /// The settings of `generation` run now.
    pub async fn applied(&mut self, generation: u64) {
        self.running = self.pending.take();
        if let Ok(mut s) = self.stats.lock() {
            s.generation = generation;
            s.applied += 1;
        }
        tracing::info!(generation, "settings from the collector applied");
        self.report(generation, None).await;
    }

    async fn report(&mut self, generation: u64, error: Option<String>) {
        if let Some(e) = &error
            && let Ok(mut s) = self.stats.lock()
        {
            s.refused += 1;
            s.last_error.clone_from(e);
        }
        if let Err(e) = self.source.report(generation, error).await {
            tracing::debug!("reporting generation {generation} to the collector: {e}");
        }
    }
}
