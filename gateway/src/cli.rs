//! The command line: `gateway [serve]`, `gateway migrate`, `gateway check-config`.

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
}

/// Runs the chosen command.
///
/// # Errors
/// Anything that stops the command, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Serve { upgrade: false }) {
        Command::CheckConfig => check_config(&settings),
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
    shared::telemetry::init_tracing(&settings.log).context("initialising logging")
}

/// Validates settings (already done by loading) and the route files.
fn check_config(settings: &Settings) -> anyhow::Result<()> {
    let routes = crate::routes::RouteTable::load(&settings.gateway.routes)
        .with_context(|| format!("GATEWAY_ROUTES {}", settings.gateway.routes.display()))?;
    println!("configuration OK (profile {:?})", settings.app.env);
    println!("  listen {}  admin {}", settings.gateway.listen, settings.gateway.admin_listen);
    println!("  {} route(s) from {}", routes.len(), settings.gateway.routes.display());
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
