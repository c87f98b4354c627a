//! `hearth-hub memory ...` while the hub runs: the store admits one process, so the commands
//! ask the running hub through its dashboard's memory API instead of opening the store.

use std::time::Duration;

use anyhow::{bail, Context};

use super::memory::RecallJson;
use crate::config::HubConfig;

/// The running hub's dashboard, as the CLI reaches it.
#[derive(Debug)]
pub struct HubClient {
    agent: ureq::Agent,
    base: String,
    secret: Option<String>,
}

impl HubClient {
    /// The running hub, when `config` enables its dashboard and it answers there; `None`
    /// when nothing listens (the hub is stopped: open the store directly).
    pub fn running(hub: &HubConfig) -> anyhow::Result<Option<HubClient>> {
        let config = &hub.dashboard;
        if !config.enabled {
            return Ok(None);
        }
        let tls = config.uses_tls(!hub.mqtt.tls_listen.is_empty());
        // Over TLS the certificate is the broker's self-signed one; the CLI reaches its own
        // machine, so it does not verify it.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(60)))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(tls)
                    .build(),
            )
            .build()
            .into();
        // A wildcard bind is reached on loopback.
        let bind = config
            .bind
            .replace("0.0.0.0:", "127.0.0.1:")
            .replace("[::]:", "[::1]:");
        let client = HubClient {
            agent,
            base: format!("{}://{bind}", if tls { "https" } else { "http" }),
            secret: config.secret(),
        };
        match client.get("/api/health", &[]) {
            Ok((200, _)) => Ok(Some(client)),
            Ok((401, _)) => bail!(
                "the hub at {} refused the admin secret: set {} (or dashboard.admin_secret) as the hub has it",
                client.base,
                config.admin_secret_env
            ),
            Ok((status, body)) => bail!("the hub at {} answered {status}: {body}", client.base),
            Err(_) => Ok(None),
        }
    }

    /// GET `path` with `query` (percent-encoded by ureq).
    fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.base))
            .query_pairs(query.iter().copied());
        if let Some(s) = &self.secret {
            request = request.header("Authorization", format!("Bearer {s}"));
        }
        let mut response = request
            .call()
            .with_context(|| format!("cannot reach the hub at {}", self.base))?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(s) = &self.secret {
            request = request.header("Authorization", format!("Bearer {s}"));
        }
        let mut response = request
            .send_form(form.iter().copied())
            .with_context(|| format!("cannot reach the hub at {}", self.base))?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    }

    /// The body of a 200 answer, or the hub's words as the error.
    fn ok((status, body): (u16, String)) -> anyhow::Result<String> {
        if status == 200 {
            Ok(body)
        } else {
            bail!("{}", body.trim())
        }
    }

    /// The same hybrid recall as the dashboard's search.
    pub fn recall(&self, topic: &str) -> anyhow::Result<RecallJson> {
        let body = HubClient::ok(self.get("/api/memories", &[("q", topic), ("k", "20")])?)?;
        serde_json::from_str(&body).context("the hub's answer is not a recall")
    }

    /// Forgets memory `id` everywhere, as the page does.
    pub fn forget(&self, id: u64) -> anyhow::Result<String> {
        HubClient::ok(self.post(&format!("/memories/{id}/forget"), &[])?)
    }

    /// Corrects memory `id` to `text`.
    pub fn correct(&self, id: u64, text: &str) -> anyhow::Result<String> {
        HubClient::ok(self.post(&format!("/memories/{id}/correct"), &[("text", text)])?)
    }

    /// The memory graph as an indented tree.
    pub fn graph(&self) -> anyhow::Result<String> {
        HubClient::ok(self.get("/api/graph", &[])?)
    }

    /// The profile, rendered; empty when there is none yet.
    pub fn profile(&self) -> anyhow::Result<String> {
        HubClient::ok(self.get("/api/profile", &[])?)
    }
}
