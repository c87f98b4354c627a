//! The dashboard in a real browser: a headless Chromium (WebDriver) against a real hub with
//! the test models and a real text terminal, with every host but loopback unresolvable (the
//! network cut off).

use std::path::Path;
use std::time::Duration;

use hearth_tests::browser::Browser;
use hearth_tests::{bin, free_port, wait_for_log, Hub, Terminal};

use crate::REPLY_TIMEOUT;

const SECRET: &str = "the household's long secret";
const WAIT: Duration = Duration::from_secs(20);

/// Where the screenshot goes: `HEARTH_SCREENSHOTS` (README's comes from here), else the
/// test's folder.
fn screenshot_path(dir: &Path) -> std::path::PathBuf {
    std::env::var_os("HEARTH_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.to_path_buf())
        .join("dashboard-rooms.png")
}

/// `hearth-hub --config CONFIG memory ARGS...` with `secret` as the admin secret.
fn hearth_hub_memory(
    config: &Path,
    secret: &str,
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(bin("hearth-hub"))
        .arg("--config")
        .arg(config)
        .arg("memory")
        .args(args)
        .env("HEARTH_TEST_ADMIN", secret)
        .output()?)
}

/// What `hearth-hub memory recall TOPIC` prints, which must succeed.
fn recall(config: &Path, topic: &str) -> anyhow::Result<String> {
    let out = hearth_hub_memory(config, SECRET, &["recall", topic])?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(said)
}

/// Waits until the page's script has its live feed open.
fn live_feed_open(browser: &Browser) -> anyhow::Result<()> {
    browser.until(WAIT, "the live feed open", || {
        Ok(browser
            .script("return document.body.classList.contains('live')")?
            .as_bool()
            .filter(|live| *live))
    })?;
    Ok(())
}

/// How many valence points the emotion plot shows for `room`.
fn points(browser: &Browser, room: &str) -> anyhow::Result<usize> {
    Ok(browser
        .all(&format!("circle.pt.valence[data-room=\"{room}\"]"))?
        .len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_household_and_acts_on_it_in_a_real_browser() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (port, web) = (free_port(), free_port());
    let config = dir.path().join("hub.toml");
    let extra = format!(
        "\n[dashboard]\nenabled = true\nbind = \"127.0.0.1:{web}\"\nadmin_secret_env = \"HEARTH_TEST_ADMIN\"\n"
    );
    std::fs::write(&config, hearth_tests::hub_toml(dir.path(), port, &extra))?;
    let mut hub =
        Hub::launch_with(&config, port, dir.path(), &[("HEARTH_TEST_ADMIN", SECRET)]).await?;
    wait_for_log(&hub.log, "serving the dashboard", WAIT).await?;
    let site = format!("http://127.0.0.1:{web}");

    // Without a session, pages send to the login and everything else is refused; a form
    // from another site and a request naming another host are refused too.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let status = |path: &str| -> anyhow::Result<u16> {
        Ok(agent.get(format!("{site}{path}")).call()?.status().as_u16())
    };
    for page in [
        "/",
        "/memories",
        "/mind",
        "/reminders",
        "/pixie",
        "/emotion",
        "/health",
    ] {
        assert_eq!(status(page)?, 303, "{page}");
    }
    for data in [
        "/api/health",
        "/api/memories?q=a",
        "/api/graph",
        "/api/profile",
        "/api/emotion",
        "/events",
        "/health/events",
        "/health/table",
        "/emotion/plot",
    ] {
        assert_eq!(status(data)?, 401, "{data}");
    }
    let foreign_form = agent
        .post(format!("{site}/rooms/announce"))
        .header("Origin", "http://evil.example")
        .send_form([("room", "kitchen"), ("text", "hello")])?;
    assert_eq!(foreign_form.status().as_u16(), 403);
    let rebound = agent
        .get(format!("{site}/login"))
        .header("Host", format!("evil.example:{web}"))
        .call()?;
    assert_eq!(rebound.status().as_u16(), 421);

    let browser = Browser::start()?;

    // A wrong password is refused; the right one opens the rooms page.
    browser.go(&format!("{site}/"))?;
    let password = browser.find("#password", WAIT)?;
    assert!(browser.url()?.ends_with("/login"), "{}", browser.url()?);
    browser.type_into(&password, "not the secret")?;
    browser.click(&browser.find("#login", WAIT)?)?;
    browser.find_text("#login-error", "not the admin secret", WAIT)?;
    let password = browser.find("#password", WAIT)?;
    browser.type_into(&password, SECRET)?;
    browser.click(&browser.find("#login", WAIT)?)?;
    browser.find_text("h1", "Rooms", WAIT)?;
    browser.find_text("#rooms", "No terminal has come online yet", WAIT)?;

    // Everything on the page came from the hub: the script ran (its live feed is open) and
    // the style sheet applied, with no other host reachable.
    live_feed_open(&browser)?;
    let foreign = browser.script(
        "return performance.getEntriesByType('resource').map(r => r.name)\
         .filter(n => !n.startsWith(location.origin))",
    )?;
    assert_eq!(foreign, serde_json::json!([]), "resources from elsewhere");
    let linked = browser.script(
        "return [...document.querySelectorAll('[src],[href]')].map(e => e.src || e.href)\
         .filter(u => !u.startsWith(location.origin))",
    )?;
    assert_eq!(linked, serde_json::json!([]), "links to elsewhere");
    let header = browser
        .script("return getComputedStyle(document.querySelector('header')).borderBottomStyle")?;
    assert_eq!(header, "solid", "the style sheet did not apply");

    // A terminal comes online: the page shows it without a reload by hand.
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    browser.find_text("[data-terminal=\"kitchen\"]", "online", WAIT)?;

    // The emotion plot gains a point for a turn just made.
    browser.go(&format!("{site}/emotion"))?;
    browser.find("#plot", WAIT)?;
    let before = points(&browser, "kitchen")?;
    kitchen
        .say("My sister Alice moved to Lisbon last spring and I miss her terribly.")
        .await?;
    kitchen.expect("hub:", REPLY_TIMEOUT).await?;
    browser.until(WAIT, "a new point on the emotion plot", || {
        Ok((points(&browser, "kitchen")? > before).then_some(()))
    })?;
    wait_for_log(&hub.log, "what=\"stored\"", Duration::from_secs(30)).await?;

    // A question typed to a room streams its answer onto the page.
    browser.go(&format!("{site}/"))?;
    let row = browser.find("tr[data-room=\"kitchen\"]", WAIT)?;
    live_feed_open(&browser)?;
    // The room's exchange so far is there before anything new is said.
    browser.find_text("#convo li.heard.earlier", "Lisbon", WAIT)?;
    browser.type_into(
        &browser.inside(&row, "input.say")?,
        "Tell me one thing about rivers.",
    )?;
    browser.click(&browser.inside(&row, "button.ask")?)?;
    browser.find_text("#convo li.heard", "Tell me one thing about rivers.", WAIT)?;
    let answer = browser.find("#convo li.reply.done:not(.earlier)", REPLY_TIMEOUT)?;
    let answer = browser.text(&answer)?;
    assert!(
        answer.starts_with("kitchen · hearth:") && answer.len() > "kitchen · hearth:".len() + 3,
        "{answer:?}"
    );
    let said = answer.trim_start_matches("kitchen · hearth:").trim();
    assert!(
        !said.contains("lost my words"),
        "the guard left nothing: {answer:?}"
    );
    // The answer is the page's: the kitchen's speaker does not say it (the terminal stays up
    // and prints nothing in 2 s).
    let waited = kitchen.expect("hub:", Duration::from_secs(2)).await;
    let why = waited.expect_err("the kitchen terminal got the dashboard's answer");
    assert!(
        why.to_string().contains("did not print"),
        "the kitchen terminal failed otherwise: {why}"
    );
    assert!(
        hearth_tests::prompt_leak(&format!("hub: {said}")).is_none(),
        "the prompt reached the page: {answer:?}"
    );
    std::fs::write(screenshot_path(dir.path()), browser.screenshot()?)?;

    // While the hub runs, `hearth-hub memory recall` asks it (the store admits one
    // process) and finds what the page will find; a wrong secret is refused in words.
    let said = recall(&config, "Alice Lisbon")?;
    assert!(
        said.contains("Lisbon") && said.contains("meaning"),
        "{said}"
    );
    let refused = hearth_hub_memory(
        &config,
        "a wrong secret, long enough",
        &["recall", "Lisbon"],
    )?;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused the admin secret"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A remembered fact is found by search, with its signals, and forgotten from the page.
    browser.go(&format!("{site}/memories?q=Alice%20Lisbon"))?;
    let hit = browser.find_text("tr.hit", "Lisbon", WAIT)?;
    let signals = browser.text(&browser.inside(&hit, "td.signals")?)?;
    assert!(
        signals.contains("words") && signals.contains("meaning"),
        "{signals}"
    );
    browser.click(&browser.inside(&hit, "button.forget")?)?;
    browser.until(WAIT, "the page without the forgotten memory", || {
        let still = browser
            .all("tr.hit, tr.memory")?
            .iter()
            .any(|e| browser.text(e).unwrap_or_default().contains("Lisbon"));
        Ok((!still).then_some(()))
    })?;

    let said = recall(&config, "Alice Lisbon")?;
    assert!(
        !said
            .lines()
            .any(|l| l.starts_with('#') && l.contains("Lisbon")),
        "{said}"
    );

    // The mind page shows the graph and the profile (or says they are empty).
    browser.go(&format!("{site}/mind"))?;
    browser.find_text("h2", "Memory graph", WAIT)?;
    browser.find("#graph", WAIT)?;

    // A reminder set on the page is listed with its time, then cancelled.
    browser.go(&format!("{site}/reminders"))?;
    browser.type_into(&browser.find("#what", WAIT)?, "water the plants")?;
    browser.type_into(&browser.find("#when", WAIT)?, "in 2 hours")?;
    browser.click(&browser.find("#set-reminder", WAIT)?)?;
    let row = browser.find_text("tr.reminder", "water the plants", WAIT)?;
    browser.find_text("#status", "remind you", WAIT)?;
    browser.click(&browser.inside(&row, "button.cancel")?)?;
    browser.find_text("#reminders", "Nothing pending", WAIT)?;
    wait_for_log(&hub.log, "dashboard: reminder cancelled", WAIT).await?;

    // The health page names the model and counts the answers' jobs, and its table is
    // replaced live.
    browser.go(&format!("{site}/health"))?;
    browser.find_text("#health-table", "consciousness", WAIT)?;
    browser.script("document.querySelector('#health-table').dataset.old = '1'")?;
    browser.until(WAIT, "a fresh health table", || {
        Ok(browser
            .all("#health-table:not([data-old])")?
            .into_iter()
            .next())
    })?;

    // Logging out ends the session, on the hub and not only in the browser.
    let cookie = browser
        .cookies()?
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let with_cookie = || {
        agent
            .get(format!("{site}/api/health"))
            .header("Cookie", &cookie)
            .call()
    };
    assert_eq!(with_cookie()?.status().as_u16(), 200);
    browser.click(&browser.find("#logout", WAIT)?)?;
    browser.find("#password", WAIT)?;
    browser.go(&format!("{site}/memories"))?;
    browser.find("#password", WAIT)?;
    assert_eq!(with_cookie()?.status().as_u16(), 401);
    drop(browser);

    // Forgotten from the page means gone from the store and the full-text index (the vector
    // index is rebuilt from the store), checked with the hub stopped.
    hub.terminate().await?;
    let said = recall(&config, "Lisbon")?;
    assert!(
        !said
            .lines()
            .any(|l| (l.starts_with('#') || l.starts_with("graph")) && l.contains("Lisbon")),
        "{said}"
    );
    let export = hearth_hub_memory(&config, SECRET, &["export"])?;
    assert!(export.status.success());
    let exported = String::from_utf8_lossy(&export.stdout);
    assert!(!exported.contains("Lisbon"), "{exported}");
    Ok(())
}

#[tokio::test]
async fn with_the_broker_on_tls_the_dashboard_speaks_https_and_the_cli_follows(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (port, tls_port, web) = (free_port(), free_port(), free_port());
    let toml = hearth_tests::hub_toml(
        d,
        port,
        &format!(
            "\n[dashboard]\nenabled = true\nbind = \"127.0.0.1:{web}\"\nadmin_secret_env = \"HEARTH_TEST_ADMIN\"\n"
        ),
    );
    let toml = hearth_tests::with_broker_tls(&toml, d, tls_port);
    let config = d.join("hub.toml");
    std::fs::write(&config, toml)?;
    let _hub = Hub::launch_with(&config, port, d, &[("HEARTH_TEST_ADMIN", SECRET)]).await?;
    wait_for_log(&_hub.log, "the dashboard speaks HTTPS", WAIT).await?;

    // The broker's certificate is self-signed: the client takes it as it is.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
        .build()
        .into();
    let mut page = agent.get(format!("https://127.0.0.1:{web}/login")).call()?;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.body_mut().read_to_string()?.contains("Admin secret"));
    let login = agent
        .post(format!("https://127.0.0.1:{web}/login"))
        .send_form([("password", SECRET)])?;
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Plain HTTP gets no page.
    let plain = agent.get(format!("http://127.0.0.1:{web}/login")).call();
    assert!(
        plain.map_or(true, |r| r.status().as_u16() >= 400),
        "the dashboard answered plain HTTP"
    );

    // `hearth-hub memory` reaches the running hub over HTTPS.
    let said = recall(&config, "Lisbon")?;
    assert!(
        said.contains("I don't remember anything about Lisbon"),
        "{said}"
    );
    Ok(())
}
