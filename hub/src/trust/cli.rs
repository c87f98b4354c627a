//! What `hearth-hub pair`, `terminals` and `mosquitto-acl` print and write.

use std::fmt::Write as _;
use std::path::Path;

use hearth_shared::{Channel, Topics};

use super::registry::Registry;
use crate::config::HubConfig;

/// A new pairing: the terminal's config file, and for an external broker the command that
/// adds its login.
#[derive(Debug)]
pub struct Pairing {
    /// A complete terminal config (identity, hub address, secret).
    pub terminal_toml: String,
    /// `mosquitto_passwd -b ...` when the hub uses an external broker.
    pub mosquitto_passwd: Option<String>,
}

/// Pairs terminal `id` in `room`.
pub fn pair(
    config: &HubConfig,
    id: &str,
    room: &str,
    host: Option<&str>,
    replace: bool,
) -> anyhow::Result<Pairing> {
    let registry = Registry::open(&config.trust.registry)?;
    let secret = registry.pair(id, room, replace)?;
    let host = host.unwrap_or(&config.mqtt.host);
    // With a TLS listener, the terminal connects there and pins its certificate.
    let tls = match config
        .mqtt
        .tls_addr()
        .filter(|_| config.mqtt.embedded_broker)
    {
        Some(addr) => Some((addr.port(), crate::tls::ensure_cert(&config.mqtt)?)),
        None => None,
    };
    let port = match (&tls, config.mqtt.embedded_broker) {
        (Some((port, _)), _) => *port,
        (None, true) => config.mqtt.listen.port(),
        (None, false) => config.mqtt.port,
    };
    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "# hearth terminal {id:?} in the {room}, paired by `hearth-hub pair`."
    );
    let _ = writeln!(
        toml,
        "# It holds the terminal's secret: keep it on the terminal only, mode 0600."
    );
    let _ = writeln!(
        toml,
        "# Add any other [terminal], [stt], [voice]... settings below."
    );
    let _ = writeln!(toml, "[terminal]\nid = {id:?}\nroom = {room:?}\n");
    let _ = writeln!(toml, "[hub]\nhost = {host:?}\nport = {port}\ntopic_prefix = {:?}\nusername = {id:?}\nsecret = {:?}", config.mqtt.topic_prefix, secret.to_text());
    if let Some((_, fingerprint)) = &tls {
        let _ = writeln!(toml, "tls_fingerprint = {fingerprint:?}");
    }
    Ok(Pairing {
        terminal_toml: toml,
        mosquitto_passwd: (!config.mqtt.embedded_broker).then(|| {
            format!(
                "mosquitto_passwd -b /etc/mosquitto/passwd {id} '{}'",
                secret.password()
            )
        }),
    })
}

/// Writes `text` to `path` with mode 0600.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    Ok(crate::files::replace(path, text.as_bytes())?)
}

/// The paired terminals as a table, after revoking `revoke` if given.
pub fn terminals(config: &HubConfig, revoke: Option<&str>) -> anyhow::Result<String> {
    let registry = Registry::open(&config.trust.registry)?;
    let mut out = String::new();
    if let Some(id) = revoke {
        if !registry.revoke(id)? {
            anyhow::bail!("terminal {id:?} is not paired");
        }
        let _ = writeln!(
            out,
            "revoked {id:?}: its login and its messages are refused from now on"
        );
    }
    let list = registry.list();
    let _ = writeln!(
        out,
        "{} paired terminal(s) in {}",
        list.len(),
        registry.path().display()
    );
    for t in list {
        let when = jiff::Timestamp::from_millisecond(t.paired_at_ms as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "  {:<20} room {:<16} paired {when}", t.id, t.room);
    }
    Ok(out)
}

/// A mosquitto ACL: the hub's user reads and writes everything under the prefix; each paired
/// terminal writes only its own utterances, cancels and presence, and reads only its own
/// replies, speech, errors and hub channel.
pub fn mosquitto_acl(config: &HubConfig) -> anyhow::Result<String> {
    let registry = Registry::open(&config.trust.registry)?;
    let topics = Topics::new(&config.mqtt.topic_prefix)?;
    let mut acl = String::new();
    let _ = writeln!(
        acl,
        "# hearth ACL for mosquitto (acl_file). Made by `hearth-hub mosquitto-acl`;"
    );
    let _ = writeln!(
        acl,
        "# run it again after pairing or revoking a terminal. Pair with"
    );
    let _ = writeln!(
        acl,
        "# `use_username_as_clientid true` so that no login takes another's client id.\n"
    );
    let _ = writeln!(
        acl,
        "user {}\ntopic readwrite {}/v1/#\n",
        config.mqtt.username, config.mqtt.topic_prefix
    );
    for t in registry.list() {
        let _ = writeln!(acl, "user {}", t.id);
        for (access, channel) in [
            ("write", Channel::Utterance),
            ("write", Channel::Cancel),
            ("readwrite", Channel::Presence),
            ("read", Channel::Reply),
            ("read", Channel::Speech),
            ("read", Channel::Error),
            ("read", Channel::Hub),
        ] {
            let _ = writeln!(acl, "topic {access} {}", topics.terminal(&t.id, channel)?);
        }
        let _ = writeln!(acl, "topic read {}\n", topics.hub_presence());
    }
    Ok(acl)
}
