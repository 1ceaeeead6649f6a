//! The login portal end to end in a real headless Chromium: `e2e/portal.mjs`
//! (playwright-core) against the real gateway in front of the real demo upstream.
//! Needs Debian's `chromium` and `npm` (`scripts/lib/ensure.sh` installs both); it
//! fails, never skips, when they are missing. Saves the login page's screenshot
//! to `docs/img/portal-login.png`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Chromium binary: `CHROMIUM` or Debian's `/usr/bin/chromium`.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: install it (apt-get install -y --no-install-recommends chromium, as scripts/lib/ensure.sh \
         does) or set CHROMIUM",
        path.display()
    );
    path
}

/// `e2e/node_modules`, installed with `npm ci` from the lock file when absent.
pub fn node_modules() {
    let e2e = repo_root().join("e2e");
    if e2e.join("node_modules/playwright-core").exists() && e2e.join("node_modules/jose").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&e2e)
        .status()
        .expect("npm not found: install Node.js and npm (scripts/lib/ensure.sh does)");
    assert!(status.success(), "npm ci --prefix e2e failed");
}

/// The demo upstream binary on a free port, killed on drop.
struct Demo {
    addr: String,
    child: std::process::Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn demo_upstream() -> Demo {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_demo_upstream"))
        .args(["--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start demo_upstream");
    // Owned by `Demo` at once, so every path below kills and waits for it.
    let demo = Demo { addr: addr.clone(), child };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return demo;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("demo_upstream did not listen on {addr}");
}

#[tokio::test]
async fn a_browser_logs_in_stays_in_switches_tenant_and_logs_out() {
    let chromium = chromium();
    node_modules();
    let demo = demo_upstream().await;
    let routes = format!(
        r#"
[[route]]
name = "demo"
path_prefix = "/"
upstreams = ["{}"]
auth = "required"
tenant = "required"
tenant_from = ["header", "path"]
min_role = "viewer"
on_unauthenticated = "redirect"
"#,
        demo.addr
    );
    let ttl = "10";
    let app = spawn_gateway(
        &routes,
        &[
            ("GATEWAY_COOKIE_SECURE", "false"),
            ("JWT_ACCESS_TTL", "10s"),
            ("RATE_LIMIT_MAX", "1000"),
            ("PORTAL_PRODUCT_NAME", "Acme Cloud"),
        ],
        None,
    )
    .await;
    let email = unique_email();
    let acme = app.register(&email, Some("Acme")).await;
    let beta = app.register(&unique_email(), Some("Beta")).await;
    sqlx::query("INSERT INTO user_tenant_roles (user_id, tenant_id, role) VALUES ($1::uuid, $2::uuid, 'member')")
        .bind(acme["user"]["id"].as_str().unwrap())
        .bind(beta["tenants"][0]["id"].as_str().unwrap())
        .execute(&app.db.pool().await)
        .await
        .unwrap();
    // The owner makes an API key in the portal: only verified makers may.
    mark_verified(&app, acme["user"]["id"].as_str().unwrap()).await;

    let root = repo_root();
    let screenshot = root.join("docs/img/portal-login.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let script = root.join("e2e/portal.mjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(root.join("e2e"))
        .env("BASE_URL", &app.base)
        .env("EMAIL", &email)
        .env("PASSWORD", PASSWORD)
        .env("ACCESS_TTL_SECONDS", ttl)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", &screenshot)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .expect("the browser test did not finish in 3 minutes")
        .expect("node not found: install Node.js (scripts/lib/ensure.sh does)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "e2e/portal.mjs failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("e2e: all steps passed"), "{stdout}");
    assert!(screenshot.metadata().is_ok_and(|m| m.len() > 1000), "no screenshot at {}", screenshot.display());
}
