//! The dashboard's rules that need no server; the pages themselves are driven in a real
//! browser by `tests/tests/it/dashboard.rs`.

use axum::http::{header, HeaderMap, HeaderValue};

use super::auth::{host_allowed, origin_allowed, same, session_token};
use super::*;

fn enabled(bind: &str, secret: &str) -> DashboardConfig {
    DashboardConfig {
        enabled: true,
        bind: bind.into(),
        admin_secret_env: "HEARTH_TEST_NO_SUCH_VARIABLE".into(),
        admin_secret: secret.into(),
        ..DashboardConfig::default()
    }
}

#[test]
fn the_dashboard_is_off_by_default_and_leaves_loopback_only_with_a_secret() {
    let off = DashboardConfig::default();
    assert!(!off.enabled);
    assert!(off.check(true).is_ok());
    // Loopback without a secret: served, open (the log says so).
    assert!(enabled("127.0.0.1:8089", "").check(false).is_ok());
    let err = enabled("0.0.0.0:8089", "").check(false).unwrap_err();
    assert!(err.contains("admin secret"), "{err}");
    assert!(enabled("0.0.0.0:8089", "a long household secret")
        .check(false)
        .is_ok());
    let err = enabled("127.0.0.1:8089", "short").check(false).unwrap_err();
    assert!(err.contains("12 or more"), "{err}");
    // With the broker on TLS the dashboard is too ("auto"), beyond loopback as well; turned
    // off, it may not leave loopback.
    let lan = enabled("0.0.0.0:8089", "a long household secret");
    assert!(lan.check(true).is_ok());
    assert!(lan.uses_tls(true) && !lan.uses_tls(false));
    let plain = DashboardConfig {
        tls: Tls::Off,
        ..lan.clone()
    };
    let err = plain.check(true).unwrap_err();
    assert!(err.contains("plain HTTP"), "{err}");
    assert!(DashboardConfig {
        tls: Tls::On,
        ..lan
    }
    .uses_tls(false));
    let mut long = enabled("127.0.0.1:8089", "");
    long.session_hours = 100_000;
    assert!(long.check(false).unwrap_err().contains("8760"));
    let err = enabled("localhost", "").check(false).unwrap_err();
    assert!(err.contains("address and port"), "{err}");
    // A config file names the table.
    let parsed: crate::config::HubConfig =
        toml::from_str("[dashboard]\nenabled = true\nbind = \"127.0.0.1:9000\"\n").unwrap();
    assert_eq!(parsed.dashboard.bind, "127.0.0.1:9000");
}

#[test]
fn the_session_cookie_is_found_among_others_and_forms_must_come_from_this_host() {
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_static("theme=dark; hearth_session=abc123; other=1"),
    );
    assert_eq!(session_token(&h).as_deref(), Some("abc123"));
    assert_eq!(session_token(&HeaderMap::new()), None);

    let hosts = vec!["127.0.0.1:8089".to_string(), "hearth.home:443".to_string()];
    let mut h = HeaderMap::new();
    assert!(
        origin_allowed(&hosts, &h),
        "no Origin (a form without one) is let through"
    );
    for (origin, allowed) in [
        ("http://127.0.0.1:8089", true),
        ("https://hearth.home", true),
        ("http://hearth.home", false),
        ("http://evil.example", false),
        ("http://127.0.0.1:8089.evil.example", false),
    ] {
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        assert_eq!(origin_allowed(&hosts, &h), allowed, "{origin}");
    }
}

#[test]
fn secrets_compare_whole() {
    let a: [u8; 32] = Sha256::digest(b"one").into();
    let b: [u8; 32] = Sha256::digest(b"two").into();
    assert!(same(&a, &a));
    assert!(!same(&a, &b));
}

#[test]
fn a_request_names_one_of_the_dashboards_hosts_with_or_without_its_default_port() {
    let hosts = vec![
        "127.0.0.1:8089".to_string(),
        "hearth.home:443".to_string(),
        "[::1]:8089".to_string(),
    ];
    for (host, allowed) in [
        ("127.0.0.1:8089", true),
        ("hearth.home", true),
        ("hearth.home:443", true),
        ("[::1]:8089", true),
        ("hearth.home:8443", false),
        ("127.0.0.1", false),
        ("evil.example:8089", false),
        ("", false),
    ] {
        assert_eq!(host_allowed(&hosts, host), allowed, "{host:?}");
    }
}
