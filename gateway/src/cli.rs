//! The command line: `gateway [serve]`, `gateway migrate`, `gateway check-config`,
//! `gateway check-route`, `gateway assertion-key`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::config::{Settings, DEFAULT_CONFIG_FILE};

use crate::app::{Application, RunOptions};

/// tenantgate's edge auth gateway.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
pub struct Cli {
    /// Settings file, read after the defaults and before the environment.
    #[arg(long, short = 'c', env = "TENANTGATE_CONFIG", default_value = DEFAULT_CONFIG_FILE, global = true)]
    pub config: PathBuf,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve {
        /// Take over the sockets of a running gateway (zero-downtime upgrade; send the
        /// old process SIGQUIT).
        #[arg(long)]
        upgrade: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate settings (and routes) and exit non-zero with the problem if invalid.
    CheckConfig,
    /// Dry-run one request through the route table and the access decision: which
    /// route, how the tenant is found, what role is required, whether it would be
    /// allowed and which headers the app would get. Exits 0 if allowed, 2 if refused.
    CheckRoute {
        /// The request's URL, e.g. `http://app.example.com/reports?x=1`.
        url: String,
        /// The request method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// Decide as this user (email): a token is signed for them with JWT_SECRET.
        #[arg(long, short = 'u')]
        user: Option<String>,
        /// A request header, `"Name: value"` (repeatable), e.g. `-H "X-Tenant-Slug: acme"`.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
    },
    /// Print a new Ed25519 private key (PEM) for `GATEWAY_ASSERTION_KEY_FILE`.
    /// Rotation: append it to the file (published, not yet signing), and after
    /// the JWKS cache time (5 minutes) move it to the top (signing).
    AssertionKey,
    /// Make a local certificate authority and a certificate it signs, for trying
    /// HTTPS on one machine: `<dir>/ca.pem` (trust it in your browser or pass it to
    /// curl's --cacert) and `<dir>/localhost.pem` + `.key` (set GATEWAY_TLS_CERT and
    /// GATEWAY_TLS_KEY to them). The authority's key is not kept, so it signs
    /// nothing else. Not for production: use your CA's or ACME certificates there.
    TlsCert {
        /// Where to write the files.
        #[arg(long, default_value = "var/tls")]
        dir: PathBuf,
        /// Names the certificate covers (repeatable).
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "*.localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])]
        hosts: Vec<String>,
    },
}

/// Runs the chosen command.
///
/// # Errors
/// Anything that stops the command, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Some(Command::AssertionKey)) {
        // Needs no settings: it is how an operator makes the file settings name.
        print!("{}", shared::assertion::generate_pem());
        return Ok(());
    }
    if let Some(Command::TlsCert { dir, hosts }) = &cli.command {
        return crate::tls::local::write(dir, hosts);
    }
    let settings = Settings::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Serve { upgrade: false }) {
        Command::CheckConfig => check_config(&settings),
        Command::CheckRoute { url, method, user, headers } => {
            let check = crate::check_route::Check { url, method, user, headers };
            let (report, verdict) = crate::check_route::run(&settings, &check)?;
            print!("{report}");
            if verdict == crate::check_route::Verdict::Refused {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::AssertionKey | Command::TlsCert { .. } => unreachable!("answered before settings are loaded"),
        Command::Migrate => {
            init_logging(&settings)?;
            migrate(&settings)
        }
        Command::Serve { upgrade } => {
            init_logging(&settings)?;
            if settings.database.auto_migrate {
                migrate(&settings)?;
            }
            let app = Application::build(&settings, &RunOptions { upgrade })?;
            tracing::info!(listen = %settings.gateway.listen, admin = %settings.gateway.admin_listen, "gateway starting");
            app.run_until_stopped();
            tracing::info!("gateway stopped");
            Ok(())
        }
    }
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    shared::telemetry::init_tracing_with(
        &settings.log,
        vec![crate::tls::failures::INTERCEPT, crate::tls::failures::SNI_NOISE],
    )
    .context("initialising logging")
}

/// Validates settings (already done by loading), the `.env` file's names and the
/// route files.
fn check_config(settings: &Settings) -> anyhow::Result<()> {
    let routes = crate::routes::load(&settings.gateway.routes)
        .with_context(|| format!("GATEWAY_ROUTES {}", settings.gateway.routes.display()))?;
    let assertions = crate::app::assertions(settings)?;
    let env_file = shared::config::env_file::locate();
    let findings = match &env_file {
        Some(path) => shared::config::env_file::check(path)
            .map_err(|e| anyhow::anyhow!(shared::config::env_file::describe(&e)))?,
        None => Vec::new(),
    };
    for finding in &findings {
        let path = env_file.as_deref().unwrap_or(std::path::Path::new(".env")).display();
        if finding.is_error() {
            eprintln!("{path} {finding}");
        } else {
            println!("note: {path} {finding}");
        }
    }
    if findings.iter().any(shared::config::env_file::Finding::is_error) {
        anyhow::bail!("fix the .env lines above: those settings are not applied as written");
    }
    println!("configuration OK (profile {:?})", settings.app.env);
    println!("  listen {}  admin {}", settings.gateway.listen, settings.gateway.admin_listen);
    println!("  {} route(s) from {}", routes.len(), settings.gateway.routes.display());
    for route in routes.routes().iter().filter(|r| r.upstream_tls().is_some_and(|tls| !tls.verify())) {
        println!(
            "note: route {} ({}) has tls_verify = false: its upstream is not authenticated",
            route.name(),
            route.origin()
        );
    }
    println!(
        "  {}; {}",
        match settings.redis.url {
            Some(_) => "cache, limits and invalidations shared through Redis",
            None => "single-node mode: no REDIS_URL, run one gateway instance",
        },
        match settings.rabbitmq.url {
            Some(_) => "jobs relayed to RabbitMQ for the worker",
            None => "no RABBITMQ_URL: this gateway runs the email and notification jobs",
        }
    );
    match assertions.signing_kid() {
        Some(kid) => println!("  assertions EdDSA, signing key {kid}"),
        None => println!("  assertions HS256 (apps hold GATEWAY_ASSERTION_SECRET)"),
    }
    if let Some(listen) = settings.gateway.tls.listen {
        let now = crate::tls::unix_now();
        let loaded = crate::tls::certs::CertSet::load(&settings.gateway.tls, now).context("TLS certificates")?;
        if let Some(first) = loaded.refused.first() {
            for refusal in &loaded.refused {
                eprintln!("{}", refusal.error);
            }
            anyhow::bail!(
                "{} TLS certificate file(s) refused, first {}: the gateway would serve their hosts without them",
                loaded.refused.len(),
                first.error
            );
        }
        let certs = loaded.set;
        println!("  HTTPS on {listen} (HTTP/2 and HTTP/1.1; TLS 1.2 and 1.3), {} certificate(s):", certs.len());
        let mut all: Vec<_> = certs.all().collect();
        all.sort_by(|a, b| a.label.cmp(&b.label));
        for cert in all {
            let days = (cert.not_after - now) / 86_400;
            println!(
                "    {}: {} (covers {}), expires {} (in {days} days)",
                cert.label,
                cert.path.display(),
                cert.names.join(", "),
                crate::tls::certs::utc(cert.not_after)
            );
            if days < 14 {
                println!("note: the {} certificate expires in {days} days: renew it", cert.label);
            }
        }
    }
    Ok(())
}

/// Applies migrations on a short-lived runtime (Pingora builds its own later).
fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let pool = shared::db::pool(&settings.database)?;
        shared::db::migrate(&pool).await.context("applying migrations")?;
        pool.close().await;
        tracing::info!("migrations applied");
        anyhow::Ok(())
    })
}
