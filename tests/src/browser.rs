//! A real Chromium driven over W3C WebDriver (Debian's `chromium` and `chromium-driver`,
//! installed by `scripts/setup`): the few commands the dashboard's tests need, spoken as
//! JSON over HTTP with ureq. Blocking: call it from the test's own thread.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The key W3C WebDriver gives an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session with its chromedriver. Both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

/// An element on the page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// The Chromium binary: `HEARTH_CHROMIUM`, else Debian's.
fn chromium() -> PathBuf {
    std::env::var_os("HEARTH_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium whose every host name but
    /// loopback fails to resolve: the network is cut off, the hub is not.
    pub fn start() -> anyhow::Result<Browser> {
        let port = crate::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot start chromedriver (scripts/setup installs Debian's chromium-driver)",
            )?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.call("GET", "/status", None).is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on port {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-extensions", "--window-size=1280,900",
                    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationHintsFetching,OptimizationGuideModelDownloading,OptimizationTargetPrediction,OptimizationGuideOnDeviceModel,AutofillServerCommunication,MediaRouter,Translate",
                    // Chromium still asks Google hosts for updates and accounts at start;
                    // none resolves, and neither would a CDN the page wrongly used.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                ],
            },
        }}});
        let created = browser.call("POST", "/session", Some(caps))?;
        browser.session = created["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        Ok(browser)
    }

    /// Sends one command; returns its `value`, or the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        }
        .with_context(|| format!("{method} {path}"))?;
        let text = response.body_mut().read_to_string()?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: not JSON: {text}"))?;
        if !response.status().is_success() {
            bail!(
                "{method} {path}: {} {}",
                value["value"]["error"],
                value["value"]["message"]
            );
        }
        Ok(value["value"].clone())
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url`.
    pub fn go(&self, url: &str) -> anyhow::Result<()> {
        self.session("POST", "/url", Some(json!({"url": url})))?;
        Ok(())
    }

    /// The current URL.
    pub fn url(&self) -> anyhow::Result<String> {
        Ok(self
            .session("GET", "/url", None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// The elements matching a CSS selector, now.
    pub fn all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let found = self.session(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub fn find(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        self.until(timeout, &format!("an element {css:?}"), || {
            Ok(self.all(css)?.into_iter().next())
        })
    }

    /// Waits up to `timeout` for an element matching `css` whose text contains `text`.
    pub fn find_text(&self, css: &str, text: &str, timeout: Duration) -> anyhow::Result<Element> {
        self.until(timeout, &format!("{css:?} saying {text:?}"), || {
            for e in self.all(css)? {
                // An element replaced while being read is simply looked for again.
                if self.text(&e).unwrap_or_default().contains(text) {
                    return Ok(Some(e));
                }
            }
            Ok(None)
        })
    }

    /// Polls `f` every 100 ms until it gives something, for up to `timeout`.
    pub fn until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = f()? {
                return Ok(found);
            }
            if Instant::now() > deadline {
                let page = self.script("return document.body ? document.body.innerText : ''")?;
                bail!(
                    "no {what} within {timeout:?} on {}; the page says:\n{}",
                    self.url()?,
                    page.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An element's visible text.
    pub fn text(&self, e: &Element) -> anyhow::Result<String> {
        Ok(self
            .session("GET", &format!("/element/{}/text", e.0), None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Types into an element.
    pub fn type_into(&self, e: &Element, text: &str) -> anyhow::Result<()> {
        self.session(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )?;
        Ok(())
    }

    /// Clicks an element.
    pub fn click(&self, e: &Element) -> anyhow::Result<()> {
        self.session("POST", &format!("/element/{}/click", e.0), None)?;
        Ok(())
    }

    /// The element matching `css` inside `e`.
    pub fn inside(&self, e: &Element, css: &str) -> anyhow::Result<Element> {
        let found = self.session(
            "POST",
            &format!("/element/{}/element", e.0),
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(Element(
            found[ELEMENT]
                .as_str()
                .with_context(|| format!("no {css:?} inside the element"))?
                .to_string(),
        ))
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn script(&self, script: &str) -> anyhow::Result<Value> {
        self.session(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The page's cookies as `name=value` pairs (HttpOnly ones included).
    pub fn cookies(&self) -> anyhow::Result<Vec<(String, String)>> {
        let all = self.session("GET", "/cookie", None)?;
        Ok(all
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("").to_string(),
                            c["value"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine;
        let b64 = self.session("GET", "/screenshot", None)?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or(""))?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session ends Chromium; a signal to chromedriver alone would leave it
        // running.
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.agent.get(format!("{}/shutdown", self.base)).call();
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
