//! Helpers for hearth's cross-process tests: find the built binaries and the fetched models,
//! start a real hub and real terminals on loopback, and watch MQTT traffic.
//!
//! The hub links llama.cpp and the voice terminal will link whisper.cpp; the two cannot share a
//! binary, so these tests drive the real `hearth-hub` and `hearth-terminal` executables.

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The username and password every test hub uses.
pub const USER: &str = "hearth";
/// See [`USER`].
pub const PASSWORD: &str = "test-secret";

/// A built binary of the workspace: `$HEARTH_BIN_DIR/name`, or the profile folder this
/// executable was built into (a test's or `hearth-bench`'s).
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("HEARTH_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            // target/<profile>/deps/it-<hash> or target/<profile>/hearth-bench -> target/<profile>
            let dir = exe.parent().expect("the executable's folder");
            match dir.ends_with("deps") {
                true => dir.parent().expect("target dir").to_path_buf(),
                false => dir.to_path_buf(),
            }
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --release --workspace --bins) or set HEARTH_BIN_DIR",
        path.display()
    );
    path
}

/// A model file fetched by `scripts/fetch-models` into `$HEARTH_MODELS_DIR` (default
/// `~/.cache/hearth/models`).
pub fn model(file: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/hearth/models")
        });
    let path = dir.join(file);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models first",
        path.display()
    );
    path
}

/// The test chat model.
pub fn smollm2() -> PathBuf {
    model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits for a line of `path` that contains `needle`.
pub async fn wait_for_log(path: &Path, needle: &str, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return Ok(line.to_string());
        }
        if Instant::now() > deadline {
            bail!(
                "{needle:?} did not appear in {} within {timeout:?}:\n{text}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running `hearth-hub` with its embedded broker on a loopback port. Killed on drop.
pub struct Hub {
    /// The process.
    pub child: Child,
    /// The broker port.
    pub port: u16,
    /// The hub's stderr (its log).
    pub log: PathBuf,
    /// The config file it was started with.
    pub config: PathBuf,
}

impl Hub {
    /// Writes a config into `dir` (the given TOML appended to the test defaults) and starts the
    /// hub on `port`, returning once it is connected to its own broker.
    pub async fn start(dir: &Path, port: u16, extra_toml: &str) -> anyhow::Result<Hub> {
        let config = dir.join(format!("hub-{port}.toml"));
        std::fs::write(&config, hub_toml(dir, port, extra_toml))?;
        Hub::launch(&config, port, dir).await
    }

    /// Starts the hub with an existing config file (a restart, say) and returns once it is
    /// connected to its broker.
    pub async fn launch(config: &Path, port: u16, dir: &Path) -> anyhow::Result<Hub> {
        Hub::launch_with(config, port, dir, &[]).await
    }

    /// [`Hub::launch`] with environment variables set for the hub (an API key, say).
    pub async fn launch_with(
        config: &Path,
        port: u16,
        dir: &Path,
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Hub> {
        let hub = Hub::spawn_with(config, port, dir, envs)?;
        wait_for_log(
            &hub.log,
            "connected to the MQTT broker",
            Duration::from_secs(60),
        )
        .await?;
        Ok(hub)
    }

    /// Starts the hub with a config file and does not wait.
    pub fn spawn(config: &Path, port: u16, dir: &Path) -> anyhow::Result<Hub> {
        Hub::spawn_with(config, port, dir, &[])
    }

    /// [`Hub::spawn`] with environment variables set for the hub.
    pub fn spawn_with(
        config: &Path,
        port: u16,
        dir: &Path,
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Hub> {
        let log = dir.join(format!("hub-{port}-{}.log", crate::unique()));
        let child = Command::new(bin("hearth-hub"))
            .arg("--config")
            .arg(config)
            // The recalled memories' text is logged at debug level only; the memory tests
            // read it.
            .env("RUST_LOG", "info,rumqttd=warn,hearth_hub::turn=debug")
            .env("OMP_WAIT_POLICY", "passive")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("spawn hearth-hub")?;
        Ok(Hub {
            child,
            port,
            log,
            config: config.to_path_buf(),
        })
    }

    /// Sends SIGTERM and waits for the hub to exit; returns its exit status.
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self
            .child
            .id()
            .context("the hub has already exited")?
            .to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed");
        Ok(tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await??)
    }

    /// The hub's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A hub config for tests: embedded broker on `port`, the test model, greedy sampling,
/// memory in `dir/memory-<port>`, reminders in `dir/pixie-<port>` in UTC without quiet hours. `extra` is appended inside the `[memory]` table; start it
/// with a `[section]` header to set anything else.
pub fn hub_toml(dir: &Path, port: u16, extra: &str) -> String {
    format!(
        r#"[mqtt]
listen = "127.0.0.1:{port}"
port = {port}
username = "{USER}"
password = "{PASSWORD}"

[llm]
model = "{model}"
threads = 1
threads_batch = 2
context_tokens = 2048
max_reply_tokens = 96
temperature = 0.0

[pixie]
path = "{pixie}"
time_zone = "UTC"
quiet_hours = ""
cooldown_s = 2
conversation_grace_s = 1
late_after_s = 1
reflect_after_idle_s = 0

[memory]
path = "{memory}"
{extra}
"#,
        model = smollm2().display(),
        memory = dir.join(format!("memory-{port}")).display(),
        pixie = dir.join(format!("pixie-{port}")).display()
    )
}

/// `toml` (a [`hub_toml`]) with the broker also listening with TLS on `tls_port`, its
/// certificate and key made in `dir/tls`.
pub fn with_broker_tls(toml: &str, dir: &Path, tls_port: u16) -> String {
    toml.replace(
        "[mqtt]\n",
        &format!(
            "[mqtt]\ntls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n",
            cert = dir.join("tls/cert.pem").display(),
            key = dir.join("tls/key.pem").display()
        ),
    )
}

/// Writes persona files (file name, TOML) into `dir/personas` and returns the hub config
/// section that names that folder, with `default` as every room's persona.
pub fn personas_toml(dir: &Path, default: &str, files: &[(&str, &str)]) -> anyhow::Result<String> {
    let personas = dir.join("personas");
    std::fs::create_dir_all(&personas)?;
    for (name, toml) in files {
        std::fs::write(personas.join(name), toml)?;
    }
    Ok(format!(
        "[personas]\ndir = \"{}\"\ndefault = \"{default}\"\n",
        personas.display()
    ))
}

/// Pairs terminal `id` (room `id`) with `hearth-hub --config <hub_config> pair`, as a person
/// would, and returns the terminal config file it wrote (with a short reconnect backoff
/// added for tests).
pub async fn pair(hub_config: &Path, dir: &Path, id: &str) -> anyhow::Result<PathBuf> {
    let out = dir.join(format!("pairing-{id}.toml"));
    let status = Command::new(bin("hearth-hub"))
        .arg("--config")
        .arg(hub_config)
        .args(["pair", id, "--room", id, "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .status()
        .await
        .context("run hearth-hub pair")?;
    anyhow::ensure!(status.success(), "hearth-hub pair {id} failed");
    let mut text = std::fs::read_to_string(&out)?;
    text.push_str("reconnect_max_ms = 500\n");
    std::fs::write(&out, text)?;
    Ok(out)
}

/// A running `hearth-terminal --text`. Its stdout lines arrive on a channel with the instant
/// each was read. Killed on drop.
pub struct Terminal {
    /// The process.
    pub child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<(String, Instant)>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
    /// The terminal's stderr (its log).
    pub log: PathBuf,
}

impl Terminal {
    /// Starts a text terminal with id and room `id` against the broker on `port`.
    pub fn start(dir: &Path, port: u16, id: &str) -> anyhow::Result<Terminal> {
        Terminal::start_with(dir, port, id, &["--text"])
    }

    /// Starts a text terminal like [`Terminal::start`] and waits until it says it reached the
    /// hub.
    pub async fn connected(dir: &Path, port: u16, id: &str) -> anyhow::Result<Terminal> {
        let mut terminal = Terminal::start(dir, port, id)?;
        terminal
            .expect("connected to the hub", Duration::from_secs(30))
            .await?;
        Ok(terminal)
    }

    /// Starts a terminal with id and room `id` and extra command-line arguments (`--text`, or
    /// `--input-wav FILE` for voice mode on a WAV file).
    pub fn start_with(dir: &Path, port: u16, id: &str, args: &[&str]) -> anyhow::Result<Terminal> {
        Terminal::start_configured(dir, port, id, "", args)
    }

    /// [`Terminal::start_with`], with `more` (TOML tables such as `[tts]`) added to its config.
    pub fn start_configured(
        dir: &Path,
        port: u16,
        id: &str,
        more: &str,
        args: &[&str],
    ) -> anyhow::Result<Terminal> {
        let config = dir.join(format!("terminal-{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[terminal]\nid = \"{id}\"\nroom = \"{id}\"\n[hub]\nport = {port}\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nreconnect_max_ms = 500\n{more}"
            ),
        )?;
        Terminal::launch(dir, &config, id, args)
    }

    /// Starts a text terminal with the config file `hearth-hub pair` wrote (see [`pair`]) and
    /// waits until it says it reached the hub.
    pub async fn paired(dir: &Path, config: &Path, id: &str) -> anyhow::Result<Terminal> {
        let mut terminal = Terminal::launch(dir, config, id, &["--text"])?;
        terminal
            .expect("connected to the hub", Duration::from_secs(30))
            .await?;
        Ok(terminal)
    }

    /// Starts a terminal with a config file and extra arguments.
    pub fn launch(dir: &Path, config: &Path, id: &str, args: &[&str]) -> anyhow::Result<Terminal> {
        let log = dir.join(format!("terminal-{id}-{}.log", unique()));
        let mut child = Command::new(bin("hearth-terminal"))
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "hearth_terminal=debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("spawn hearth-terminal")?;
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send((line, Instant::now())).is_err() {
                    break;
                }
            }
        });
        Ok(Terminal {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            log,
        })
    }

    /// Types a line.
    pub async fn say(&mut self, text: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{text}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Waits for a stdout line containing `needle`; returns it and when it was read.
    pub async fn expect(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<(String, Instant)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some((line, at))) => {
                    self.seen.push(line.clone());
                    // No test may see the prompt's insides reach a terminal.
                    if let Some(marker) = prompt_leak(&line) {
                        bail!("the reply carries the prompt's {marker:?}: {line:?}");
                    }
                    if line.contains(needle) {
                        return Ok((line, at));
                    }
                }
                Ok(None) => bail!(
                    "terminal exited before printing {needle:?}; it printed {:?}; log:\n{}",
                    self.seen,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
                Err(_) => bail!(
                    "terminal did not print {needle:?} within {timeout:?}; it printed {:?}; log:\n{}",
                    self.seen,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }
}

/// The prompt label, role marker or template token a terminal's reply line carries, if any
/// (the hub's output guard must have removed them all).
pub fn prompt_leak(line: &str) -> Option<&'static str> {
    const MARKERS: &[&str] = &[
        "[USER SAID",
        "[PROFILE,",
        "[FACT FROM",
        "[TONE]",
        // The tone line's numbers, echoed without its label.
        "(valence ",
        "[YOU SAID",
        "[INFERRED",
        "<start_of_turn>",
        "<end_of_turn>",
        "<|",
        "User:",
        "Assistant:",
    ];
    let reply = line.strip_prefix("hub: ")?;
    MARKERS.iter().copied().find(|m| reply.contains(m))
}

/// A plain MQTT client for watching and injecting traffic.
pub struct Observer {
    /// The client, for publishing.
    pub client: AsyncClient,
    messages: mpsc::UnboundedReceiver<(String, Vec<u8>, Instant)>,
}

impl Observer {
    /// Connects to the broker on `port` and subscribes to `filters`; returns once subscribed.
    pub async fn connect(port: u16, filters: &[&str]) -> anyhow::Result<Observer> {
        let mut opts = MqttOptions::new(format!("observer-{}", unique()), "127.0.0.1", port);
        opts.set_credentials(USER, PASSWORD)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        for f in filters {
            client.subscribe(*f, QoS::AtLeastOnce).await?;
        }
        let (tx, messages) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let wanted = filters.len();
        tokio::spawn(async move {
            let mut acks = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acks += 1;
                        if acks == wanted {
                            let _ = ready_tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec(), Instant::now()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx.recv())
            .await
            .context("observer could not subscribe")?;
        Ok(Observer { client, messages })
    }

    /// Publishes raw bytes with QoS 1.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        Ok(())
    }

    /// The next message on any subscribed topic within `timeout`: (topic, payload, when).
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<(String, Vec<u8>, Instant)> {
        match tokio::time::timeout(timeout, self.messages.recv()).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => bail!("observer stopped"),
            Err(_) => bail!("nothing within {timeout:?}"),
        }
    }

    /// The next message on `topic` within `timeout`.
    pub async fn next_on(
        &mut self,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<(Vec<u8>, Instant)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                Ok(Some((t, payload, at))) if t == topic => return Ok((payload, at)),
                Ok(Some(_)) => continue,
                Ok(None) => bail!("observer stopped"),
                Err(_) => bail!("nothing on {topic} within {timeout:?}"),
            }
        }
    }
}
