//! The web dashboard (issue 18) in a real browser: Debian's chromium, headless, driven through
//! chromedriver over WebDriver (the `fantoccini` crate), against `hopdns serve --web` on the
//! lab. Lab networks 234..=239 (230..=233 are the backend tests', tests/web_api.rs).
//!
//! Every wait polls for a condition (in the page, over DNS or HTTP) for up to [`WAIT`]: the
//! suite runs on a loaded 2-core machine. The browser reaches only loopback: a dead proxy
//! (127.0.0.1:9) for every other address and a resolver that finds no names, so nothing a page
//! or chromium itself asks for leaves the host.
//!
//! `cargo test --test tests web::screenshots -- --ignored` rewrites docs/dashboard/*.png.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hopdns::lab::{Lab, LabConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::ops::{hints_file, lab_args, serve, Scratch, Serve};
use crate::util::{answers, bin, udp};

/// How long any one condition may take to hold. Generous: chromium starts slowly on a busy
/// machine, and nothing here waits this long when things work.
const WAIT: Duration = Duration::from_secs(45);
const PASSWORD: &str = "correct horse battery staple";
/// The dashboard's port on the lab address (any free port would do).
const WEB_PORT: u16 = 8053;
/// Host number of `hopdns serve` (DNS, web, metrics) inside the lab network.
const HOST: u8 = 252;

/// Rules for the dashboard tests: one blocked lab name (www.example.net, 192.0.2.22 when
/// not blocked), a local name, and a pool with one member up and one down.
fn rules(net: u8) -> String {
    format!(
        r#"[settings]
block = "nxdomain"

[[rule]]
name = "www.example.net"
action = "block"

[[rule]]
name = "*.ads.example"
action = "block"

[[rule]]
name = "nas.home.lan"
action = "override"
a = ["192.168.1.10"]

[[pool]]
name = "web"
members = [{{ address = "127.53.{net}.240" }}, {{ address = "127.53.{net}.241" }}]
[pool.health]
check = "tcp"
port = 8080
interval = "1s"

[[rule]]
name = "app.home.lan"
action = "pool"
pool = "web"
"#
    )
}

/// `hopdns serve --web` on lab network `net` with [`rules`], a password and metrics, plus a
/// TCP listener that keeps the pool's first member up.
struct Dash {
    lab: Lab,
    dir: Scratch,
    serve: Option<Serve>,
    dns: SocketAddr,
    web: SocketAddr,
    metrics: SocketAddr,
    member: tokio::task::JoinHandle<()>,
}

impl Dash {
    async fn start(net: u8) -> Dash {
        let lab = Lab::start(LabConfig { net })
            .await
            .expect("lab starts (tests run as root)");
        let dir = Scratch::new(&format!("web-{net}"));
        let hints = hints_file(&lab, &dir);
        let rules_file = dir.path("rules.toml");
        std::fs::write(&rules_file, rules(net)).unwrap();
        let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(lab.addr(240)), 8080))
            .await
            .unwrap();
        let member = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let hash = password_hash(PASSWORD);
        let dns = SocketAddr::new(IpAddr::V4(lab.addr(HOST)), 53);
        let web = SocketAddr::new(IpAddr::V4(lab.addr(HOST)), WEB_PORT);
        let metrics = SocketAddr::new(IpAddr::V4(lab.addr(HOST)), 9153);
        let args = lab_args(
            dns,
            &hints,
            &[
                "--rules",
                rules_file.to_str().unwrap(),
                "--web",
                &web.to_string(),
                "--web-password-hash",
                &hash,
                "--metrics",
                &metrics.to_string(),
            ],
        );
        let serve = serve(&args, dns, Some(&dir.path("serve.log"))).await;
        let start = Instant::now();
        while TcpStream::connect(web).await.is_err() {
            assert!(
                start.elapsed() < WAIT,
                "the dashboard never listened on {web}; serve's log:\n{}",
                std::fs::read_to_string(dir.path("serve.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Dash {
            lab,
            dir,
            serve: Some(serve),
            dns,
            web,
            metrics,
            member,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web)
    }

    /// serve's stderr so far, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("serve.log")).unwrap_or_default()
    }

    async fn stop(mut self) {
        drop(self.serve.take());
        self.member.abort();
        self.lab.shutdown().await;
    }

    /// Asks hopdns until `done` holds for the reply; panics naming `what` after [`WAIT`].
    async fn dns_until(&self, what: &str, name: &str, done: impl Fn(&Message) -> bool) -> Message {
        let start = Instant::now();
        loop {
            let m = udp(self.dns, name, RecordType::A, Some(1232)).await;
            if done(&m) {
                return m;
            }
            assert!(
                start.elapsed() < WAIT,
                "not within {WAIT:?}: {what}; last reply {:?} {:?}; serve's log:\n{}",
                m.metadata.response_code,
                answers(&m),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The argon2id hash `hopdns web-password` prints for `password` (read on stdin).
fn password_hash(password: &str) -> String {
    let mut child = Command::new(bin())
        .arg("web-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "hopdns web-password failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "not a PHC string: {hash}");
    hash
}

/// One HTTP/1.0 request from outside the browser: (status, headers, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("an HTTP reply")
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A POST to one of chromedriver's own endpoints under the session: `se/log` reads chromium's
/// console (`goog:loggingPrefs`; each read empties it), `goog/cdp/execute` sends a DevTools
/// command.
#[derive(Debug)]
struct Chromedriver {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for Chromedriver {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/{}",
            session.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// A chromedriver with one headless chromium session. chromedriver runs in a process group
/// of its own, so dropping this kills exactly the processes it started.
struct Browser {
    client: Client,
    driver: Child,
    /// Console entries at level SEVERE read so far.
    errors: Mutex<Vec<String>>,
}

impl Browser {
    async fn start() -> Browser {
        for (tool, package) in [
            ("chromium", "chromium"),
            ("chromedriver", "chromium-driver"),
        ] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "tests/web.rs drives the dashboard in Debian's chromium: `{tool}` is not \
                 installed. Install it with `apt-get install chromium chromium-driver` \
                 (.ci/run does), then run the tests again. Missing package: {package}"
            );
        }
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        // chromedriver picks a free port and names it on stdout; the thread keeps reading
        // so a full pipe never blocks it.
        let stdout = driver.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').parse::<u16>().ok());
                }
            }
        });
        let port = rx
            .recv_timeout(WAIT)
            .ok()
            .flatten()
            .expect("chromedriver names its port within the wait");
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": { "args": [
                "--headless=new",
                // Root in CI: chromium's sandbox needs an unprivileged user.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1280,900",
                // Loopback only: every other address goes to a dead proxy, and no name
                // resolves except loopback addresses.
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.*",
            ]},
        });
        let caps: Capabilities = serde_json::from_value(caps).unwrap();
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        let client = tokio::time::timeout(
            WAIT,
            builder
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("chromium starts within the wait")
        .expect("chromedriver opens a chromium session");
        Browser {
            client,
            driver,
            errors: Mutex::new(Vec::new()),
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    /// Runs `script` (a function body: `return ...`) in the page.
    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something truthy; panics naming `what` after
    /// [`WAIT`], with the last value and the console's errors.
    async fn until(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if start.elapsed() > WAIT {
                let errors = self.console_errors().await;
                panic!("not within {WAIT:?}: {what} (last value {v}); console errors: {errors:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every console error (level SEVERE) the page logged since the browser started.
    async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(Chromedriver {
                path: "se/log",
                body: json!({ "type": "browser" }),
            })
            .await
            .expect("chromedriver returns the browser log");
        let mut errors = self.errors.lock().unwrap();
        for entry in log.as_array().into_iter().flatten() {
            if entry["level"] == "SEVERE" {
                errors.push(entry["message"].as_str().unwrap_or_default().to_string());
            }
        }
        errors.clone()
    }

    /// A fetch() from the page (its cookies, its origin): (status, body).
    async fn fetch(
        &self,
        method: &str,
        path: &str,
        headers: Value,
        body: Option<&str>,
    ) -> (u16, String) {
        let v = self
            .client
            .execute_async(
                "const [method, path, headers, body, done] = arguments;
                 fetch(path, { method, headers, body, credentials: 'same-origin' })
                   .then(async (r) => done([r.status, await r.text()]))
                   .catch((e) => done([0, String(e)]));",
                vec![json!(method), json!(path), headers, json!(body)],
            )
            .await
            .expect("fetch runs");
        (
            v[0].as_u64().unwrap_or(0) as u16,
            v[1].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Runs `script` in every page before the page's own scripts (DevTools'
    /// `Page.addScriptToEvaluateOnNewDocument`).
    async fn before_each_page(&self, script: &str) {
        self.client
            .issue_cmd(Chromedriver {
                path: "goog/cdp/execute",
                body: json!({
                    "cmd": "Page.addScriptToEvaluateOnNewDocument",
                    "params": { "source": script },
                }),
            })
            .await
            .expect("chromedriver passes the DevTools command");
    }

    async fn fill(&self, id: &str, text: &str) {
        let e = self.client.find(Locator::Id(id)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click #{id}: {e}"));
    }

    async fn text(&self, id: &str) -> String {
        self.js(&format!(
            "return document.getElementById('{id}').textContent"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Logs in through the page's form and waits for the actions to show.
    async fn login(&self, dash: &Dash) {
        self.goto(&dash.url("/#actions")).await;
        self.until(
            "the login form shows",
            "return !document.getElementById('login-form').hidden",
        )
        .await;
        self.fill("login-password", PASSWORD).await;
        self.click("login-submit").await;
        self.until(
            "the actions show after logging in",
            "return !document.getElementById('actions').hidden",
        )
        .await;
    }

    /// Ends the session (chromedriver closes chromium), then drops the rest.
    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Kills chromedriver's process group (chromedriver and the chromium it started).
fn kill_group(driver: &mut Child) {
    let pgid = driver.id() as i32;
    // SAFETY: kill(2) on the process group of a child this test started; no memory involved.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// The page's CSRF token, read from /api/session with the page's cookie.
async fn csrf(b: &Browser) -> String {
    let (status, body) = b.fetch("GET", "/api/session", json!({}), None).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["csrf"]
        .as_str()
        .expect("a token once logged in")
        .to_string()
}

fn json_header() -> Value {
    json!({ "Content-Type": "application/json" })
}

/// Waits until the page is read-only: the login form shows and the actions do not.
async fn until_read_only(b: &Browser, what: &str) {
    b.until(
        what,
        "return !document.getElementById('login-form').hidden && \
         document.getElementById('actions').hidden",
    )
    .await;
}

/// The page's own request to flush the whole cache, without a CSRF token: (status, body).
async fn flush_without_token(b: &Browser) -> (u16, String) {
    b.fetch(
        "POST",
        "/api/flush",
        json_header(),
        Some(r#"{"name":null}"#),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_loads_without_console_errors_on_a_desktop_and_a_phone_screen_and_polls_without_sse(
) {
    let dash = Dash::start(234).await;
    let b = Browser::start().await;
    for _ in 0..5 {
        udp(dash.dns, "www.example.com", RecordType::A, Some(1232)).await;
    }
    udp(dash.dns, "www.example.net", RecordType::A, Some(1232)).await;
    for (width, height, screen) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        b.client.set_window_size(width, height).await.unwrap();
        b.goto(&dash.url("/")).await;
        b.until(
            &format!("{screen}: the event stream connects (live)"),
            "return document.getElementById('conn').textContent === 'live'",
        )
        .await;
        b.until(
            &format!("{screen}: the tiles fill in"),
            "return document.getElementById('t-qps').textContent !== '–' && \
             document.getElementById('t-hit').textContent !== '–'",
        )
        .await;
        b.until(
            &format!("{screen}: the chart draws the queries just sent"),
            "return document.querySelectorAll('#chart svg rect').length > 0",
        )
        .await;
        for (view, ready) in [
            ("overview", "#chart svg"),
            ("top", "#top-domains li"),
            ("log", "#log-table tbody tr"),
            ("rules", "#rule-files tbody tr"),
            ("actions", "#login-form:not([hidden])"),
        ] {
            b.goto(&dash.url(&format!("/#{view}"))).await;
            b.until(
                &format!("{screen}: the {view} view shows its data ({ready})"),
                &format!(
                    "return !document.getElementById('view-{view}').hidden && \
                     document.querySelector('{ready}') !== null"
                ),
            )
            .await;
            // Nothing wider than the screen: tables scroll inside their box.
            let fits = b
                .js("return document.documentElement.scrollWidth <= window.innerWidth")
                .await;
            assert_eq!(
                fits,
                json!(true),
                "{screen}: the {view} view is wider than the window"
            );
        }
    }
    // A browser without EventSource (or a proxy that breaks the stream) polls instead, and
    // the numbers still move.
    b.client.set_window_size(1280, 900).await.unwrap();
    b.before_each_page("delete window.EventSource;").await;
    b.goto(&dash.url("/")).await;
    b.until(
        "without EventSource the page polls",
        "return document.getElementById('conn').textContent === 'polling' && \
         document.getElementById('t-queries').textContent !== '–'",
    )
    .await;
    let before = b.text("t-queries").await;
    for _ in 0..5 {
        udp(dash.dns, "www.example.com", RecordType::A, Some(1232)).await;
    }
    b.until(
        "polling shows the new queries",
        &format!("return document.getElementById('t-queries').textContent !== '{before}'"),
    )
    .await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_log_shows_a_query_just_sent_and_traces_it_hop_by_hop() {
    let dash = Dash::start(235).await;
    let b = Browser::start().await;
    b.goto(&dash.url("/#log")).await;
    b.until(
        "the log view shows",
        "return !document.getElementById('view-log').hidden",
    )
    .await;
    // A question the page has not seen, sent now through the resolver.
    let m = udp(dash.dns, "alias.example.com", RecordType::AAAA, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let row = "[...document.querySelectorAll('#log-table tbody tr')].find((r) => \
               r.dataset.name.replace(/\\.$/, '') === 'alias.example.com' && \
               r.children[3].textContent === 'AAAA')";
    b.until(
        "the query just sent shows in the log (following)",
        &format!("return {row} !== undefined"),
    )
    .await;
    let outcome = b.js(&format!("return {row}.dataset.outcome")).await;
    assert_eq!(outcome, json!("resolved"), "a cold name is resolved");
    // A blocked one, then the outcome filter shows only it.
    let m = udp(dash.dns, "www.example.net", RecordType::A, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "blocked");
    b.client
        .find(Locator::Id("log-outcome"))
        .await
        .unwrap()
        .select_by_value("blocked")
        .await
        .unwrap();
    b.until(
        "filtering by outcome leaves only the blocked query",
        "const rows = [...document.querySelectorAll('#log-table tbody tr')];
         return rows.length > 0 && rows.every((r) => r.dataset.outcome === 'blocked') &&
                rows.some((r) => r.dataset.name.startsWith('www.example.net'))",
    )
    .await;
    b.client
        .find(Locator::Id("log-outcome"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();
    b.fill("log-name", "alias.example").await;
    b.click("log-form-submit").await;
    b.until(
        "filtering by name leaves only that name",
        "const rows = [...document.querySelectorAll('#log-table tbody tr')];
         return rows.length > 0 && rows.every((r) => r.dataset.name.startsWith('alias.example.com'))",
    )
    .await;

    // Tracing sends queries upstream: it needs a login.
    b.js(&format!(
        "{row}.querySelector('button').click(); return true"
    ))
    .await;
    b.until(
        "the trace asks for a login first",
        "return document.getElementById('trace-hops').textContent.includes('log in')",
    )
    .await;
    b.login(&dash).await;
    b.goto(&dash.url("/#log")).await;
    b.until(
        "the query is still in the log",
        &format!("return {row} !== undefined"),
    )
    .await;
    b.js(&format!(
        "{row}.querySelector('button').click(); return true"
    ))
    .await;
    let hops = b
        .until(
            "the trace shows the resolution hop by hop, ending in the answer",
            "const hops = [...document.querySelectorAll('#trace-hops li.hop')];
             const done = hops.find((h) => h.classList.contains('hop-done'));
             return done && hops.some((h) => h.classList.contains('hop-reply'))
                 ? hops.map((h) => h.textContent).join('\\n') : null",
        )
        .await;
    // By default a trace takes every hop on an empty cache, as `hopdns trace` does: from
    // the root's referral down to example.com's server.
    let hops = hops.as_str().unwrap();
    assert!(
        hops.contains("referral")
            && hops.contains("for example.com.:")
            && hops.contains("CNAME www.example.com.")
            && hops.contains("2001:db8::1"),
        "the referrals, the hop to example.com's server, the CNAME and the AAAA: {hops}"
    );
    // Through the running cache instead, the name (cached by the query above) shows the
    // cache alone.
    b.click("trace-fresh").await;
    let hops = b
        .until(
            "a trace through the running cache shows the cache hop",
            "const hops = [...document.querySelectorAll('#trace-hops li.hop')];
             return hops.some((h) => h.classList.contains('hop-cache')) &&
                    hops.some((h) => h.classList.contains('hop-done')) &&
                    !hops.some((h) => h.classList.contains('hop-reply'))
                 ? hops.map((h) => h.textContent).join('\\n') : null",
        )
        .await;
    assert!(hops.as_str().unwrap().contains("2001:db8::1"), "{hops}");
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_a_login_refuse_a_wrong_password_and_a_request_without_the_csrf_token() {
    let dash = Dash::start(236).await;
    let b = Browser::start().await;
    b.goto(&dash.url("/#actions")).await;
    until_read_only(&b, "read-only: the login form shows and the actions do not").await;
    // Without a session every action is refused, from the page or from outside it.
    let (status, body) = flush_without_token(&b).await;
    assert_eq!(status, 401, "an action without a session: {body}");
    let (status, _, body) = http(
        dash.web,
        "POST",
        "/api/pause",
        &[("Content-Type", "application/json")],
        r#"{"minutes":5}"#,
    )
    .await;
    assert_eq!(status, 401, "a pause without a session: {body}");

    // A wrong password is refused and leaves the page read-only.
    b.fill("login-password", "not the password").await;
    b.click("login-submit").await;
    b.until(
        "the page says the password is wrong",
        "const e = document.getElementById('login-error');
         return !e.hidden && e.textContent.includes('Wrong password')",
    )
    .await;
    assert_eq!(b.text("session-badge").await, "read-only");
    let (_, body) = b.fetch("GET", "/api/session", json!({}), None).await;
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["logged_in"], json!(false), "{body}");

    // The right one opens the actions.
    b.fill("login-password", PASSWORD).await;
    b.click("login-submit").await;
    b.until(
        "the actions show after logging in",
        "return !document.getElementById('actions').hidden",
    )
    .await;
    assert_eq!(b.text("session-badge").await, "logged in");

    // CSRF: the session cookie alone does not make an action, nor does a wrong token.
    let (status, body) = flush_without_token(&b).await;
    assert_eq!(status, 403, "an action without the CSRF token: {body}");
    let (status, body) = b
        .fetch(
            "POST",
            "/api/flush",
            json!({ "Content-Type": "application/json", "X-CSRF-Token": "0123456789abcdef" }),
            Some(r#"{"name":null}"#),
        )
        .await;
    assert_eq!(status, 403, "an action with a wrong CSRF token: {body}");
    let token = csrf(&b).await;
    let (status, body) = b
        .fetch(
            "POST",
            "/api/flush",
            json!({ "Content-Type": "application/json", "X-CSRF-Token": token }),
            Some(r#"{"name":"www.example.com"}"#),
        )
        .await;
    assert_eq!(status, 200, "the token and the cookie together: {body}");
    // The token without the cookie (another client) is refused too.
    let (status, _, body) = http(
        dash.web,
        "POST",
        "/api/flush",
        &[
            ("Content-Type", "application/json"),
            ("X-CSRF-Token", &token),
        ],
        r#"{"name":null}"#,
    )
    .await;
    assert_eq!(status, 401, "a token without the session cookie: {body}");

    // The page's own buttons: look up, flush, reload.
    b.fill("lookup-name", "www.example.com").await;
    b.click("lookup-submit").await;
    b.until(
        "a lookup through the resolver shows the answer",
        "return document.getElementById('lookup-result').textContent.includes('192.0.2.1')",
    )
    .await;
    b.fill("flush-name", "www.example.com").await;
    b.click("flush-submit").await;
    b.until(
        "a flush says how many entries went",
        "return document.getElementById('flush-result').textContent.includes('removed')",
    )
    .await;
    b.click("reload-submit").await;
    b.until(
        "a reload reports what it loaded",
        "const t = document.getElementById('reload-result').textContent;
         return t !== '' && !t.startsWith('Reloading')",
    )
    .await;
    let reload = b.text("reload-result").await;
    assert!(
        !b.js("return document.getElementById('reload-result').className === 'bad'")
            .await
            .as_bool()
            .unwrap(),
        "reload failed: {reload}"
    );
    // Logging out makes the page read-only again.
    b.click("logout-submit").await;
    until_read_only(&b, "logged out: the login form is back").await;
    let (status, _) = flush_without_token(&b).await;
    assert_eq!(status, 401, "the session ended with the logout");
    let errors = b.console_errors().await;
    // The refused requests above are this test's own; nothing else may have failed.
    let unexpected: Vec<_> = errors
        .iter()
        .filter(|e| !(e.contains("/api/") && (e.contains(" 401 ") || e.contains(" 403 "))))
        .collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    b.close().await;
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_blocking_lets_a_blocked_name_resolve_until_the_pause_ends() {
    let dash = Dash::start(237).await;
    let blocked = |m: &Message| m.metadata.response_code == ResponseCode::NXDomain;
    let resolved = |m: &Message| answers(m) == ["www.example.net. A 192.0.2.22"];
    let m = udp(dash.dns, "www.example.net", RecordType::A, Some(1232)).await;
    assert!(blocked(&m), "blocked before the pause: {:?}", answers(&m));
    let b = Browser::start().await;
    b.login(&dash).await;
    b.fill("pause-minutes", "1").await;
    b.click("pause-submit").await;
    b.until(
        "the page shows the pause with the time left",
        "return document.getElementById('pause-state').textContent.includes('left') && \
         !document.getElementById('blocking-badge').hidden",
    )
    .await;
    dash.dns_until(
        "the blocked name resolves while paused",
        "www.example.net",
        resolved,
    )
    .await;
    // Names that were never blocked are unaffected, and so are local names.
    let m = udp(dash.dns, "nas.home.lan", RecordType::A, Some(1232)).await;
    assert_eq!(answers(&m), ["nas.home.lan. A 192.168.1.10"]);
    // The pause shows on the overview too (through the events), and counts down.
    let (status, _, body) = http(dash.web, "GET", "/api/overview?window=hour", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let o: Value = serde_json::from_str(&body).unwrap();
    let until = o["blocking"]["paused_until"]
        .as_u64()
        .expect("paused_until set");
    let now = o["now"].as_u64().unwrap();
    assert!(until > now && until <= now + 61, "{until} vs {now}");

    b.click("resume-submit").await;
    b.until(
        "the page shows blocking on again",
        "return document.getElementById('pause-state').textContent === 'Blocking is on.' && \
         document.getElementById('blocking-badge').hidden",
    )
    .await;
    // The resolved answer is in the cache now; the rule still wins over it.
    dash.dns_until(
        "the name is blocked again once the pause ends",
        "www.example.net",
        blocked,
    )
    .await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
    dash.stop().await;
}

/// Every metric docs/grafana/hopdns.json queries is one the binary exports: the names in
/// its `expr`s against a scrape of `--metrics` after some traffic (text format 0.0.4, where
/// counters carry `_total` and histograms `_bucket`, `_sum`, `_count`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_metrics_the_binary_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana/hopdns.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("docs/grafana/hopdns.json is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "panels with queries: {exprs:?}");
    let used: std::collections::BTreeSet<String> =
        exprs.iter().flat_map(|e| metric_names(e)).collect();

    let dash = Dash::start(238).await;
    for name in ["www.example.com", "www.example.net", "app.home.lan"] {
        udp(dash.dns, name, RecordType::A, Some(1232)).await;
    }
    let (status, _, scrape) = http(
        dash.metrics,
        "GET",
        "/metrics",
        &[("Accept", "text/plain; version=0.0.4")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{scrape}");
    let mut exported = std::collections::BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{suffix}"));
            }
        } else {
            exported.insert(name.to_string());
        }
    }
    let missing: Vec<_> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "docs/grafana/hopdns.json queries metrics the binary does not export: {missing:?}\n\
         exported: {exported:?}"
    );
    dash.stop().await;
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) | ("query", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers that start with `hopdns_` or
/// `process_` (every metric of ours does; functions and labels do not).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("hopdns_") || word.starts_with("process_") {
                names.push(word.to_string());
            }
        } else if c == '"' {
            // Skip label values.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

/// Writes docs/dashboard/*.png: each view with real traffic (cached, resolved, redirected,
/// blocked, failed) spread over three minutes, on a desktop window and one phone screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/dashboard/*.png; run by hand after changing the page"]
async fn screenshots() {
    let dash = Dash::start(239).await;
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard");
    std::fs::create_dir_all(&out).unwrap();
    let b = Browser::start().await;
    b.client.set_window_size(1280, 900).await.unwrap();
    let shot = |name: &'static str| {
        let b = &b;
        let out = out.clone();
        async move {
            b.js("window.scrollTo(0, 0); return true").await;
            let png = b.client.screenshot().await.unwrap();
            std::fs::write(out.join(format!("{name}.png")), png).unwrap();
        }
    };
    b.goto(&dash.url("/")).await;
    // Three minutes of mixed traffic at a rate that rises and falls, so the chart has bars
    // of every outcome: cached, resolved (a new name each round), redirected, blocked, failed
    // (a CNAME loop). The overview is taken while it still flows.
    let dns = dash.dns;
    let traffic = tokio::spawn(async move {
        let names = [
            ("www.example.com", 6),
            ("alias.example.com", 3),
            ("www.example.org", 2),
            ("nas.home.lan", 2),
            ("app.home.lan", 2),
            ("www.example.net", 3),
            ("tracker.ads.example", 2),
            ("self1.loops.com", 1),
        ];
        let start = Instant::now();
        let mut round = 0u64;
        while start.elapsed() < Duration::from_secs(180) {
            let scale = [1, 2, 3, 4, 3, 2][(round / 3 % 6) as usize];
            for (name, n) in names {
                for _ in 0..n * scale {
                    udp(dns, name, RecordType::A, Some(1232)).await;
                }
            }
            udp(
                dns,
                &format!("x{round}.wild.net"),
                RecordType::A,
                Some(1232),
            )
            .await;
            round += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(170) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    b.until(
        "live numbers",
        "return document.getElementById('conn').textContent === 'live' && \
         document.querySelectorAll('#chart svg rect').length > 10",
    )
    .await;
    shot("overview").await;
    traffic.await.unwrap();
    b.goto(&dash.url("/#top")).await;
    b.until(
        "top lists",
        "return document.querySelector('#top-blocked li') !== null",
    )
    .await;
    shot("top").await;
    b.login(&dash).await;
    b.goto(&dash.url("/#log")).await;
    b.until(
        "the log",
        "return document.querySelectorAll('#log-table tbody tr').length > 5",
    )
    .await;
    b.js("document.getElementById('log-follow').checked = false; return true")
        .await;
    shot("log").await;
    b.js(
        "[...document.querySelectorAll('#log-table tbody tr')].find((r) => \
          r.dataset.name.startsWith('alias.example.com')).querySelector('button').click(); \
          return true",
    )
    .await;
    b.until(
        "the trace",
        "return document.querySelector('#trace-hops li.hop-done') !== null",
    )
    .await;
    b.js("document.getElementById('trace').scrollIntoView(); return true")
        .await;
    shot("trace").await;
    b.goto(&dash.url("/#rules")).await;
    b.until(
        "rules and pools with a health check done",
        "return document.querySelector('#pools .pool') !== null && \
         !document.getElementById('pools').textContent.includes('never')",
    )
    .await;
    shot("rules").await;
    b.goto(&dash.url("/#actions")).await;
    b.until(
        "the actions",
        "return !document.getElementById('actions').hidden",
    )
    .await;
    b.fill("pause-minutes", "5").await;
    b.click("pause-submit").await;
    b.fill("lookup-name", "www.example.com").await;
    b.click("lookup-submit").await;
    b.until(
        "a lookup result and the pause",
        "return document.getElementById('lookup-result').textContent.includes('192.0.2.1') && \
         document.getElementById('pause-state').textContent.includes('left')",
    )
    .await;
    shot("actions").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.goto(&dash.url("/#overview")).await;
    b.until(
        "the phone overview",
        "return document.querySelectorAll('#chart svg rect').length > 3",
    )
    .await;
    shot("phone").await;
    let token = csrf(&b).await;
    let (status, body) = b
        .fetch(
            "POST",
            "/api/pause",
            json!({ "Content-Type": "application/json", "X-CSRF-Token": token }),
            Some(r#"{"minutes":0}"#),
        )
        .await;
    assert_eq!(status, 200, "resume: {body}");
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
    dash.stop().await;
}
