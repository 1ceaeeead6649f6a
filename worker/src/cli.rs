//! The command line: `worker [run]`, `worker dead-letters list|show|replay`,
//! `worker check-config`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use shared::config::{Settings, DEFAULT_CONFIG_FILE};
use shared::queue::{self, JobQueue};

use crate::app::Application;
use crate::dead_letters;

/// tenantgate's worker: sends email and stores notifications from RabbitMQ.
#[derive(Debug, Parser)]
#[command(name = "worker", version, about)]
pub struct Cli {
    /// Settings file, read after the defaults and before the environment.
    #[arg(long, short = 'c', env = "TENANTGATE_CONFIG", default_value = DEFAULT_CONFIG_FILE, global = true)]
    pub config: PathBuf,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the queues until SIGTERM or Ctrl-C (the default).
    Run,
    /// Inspect or requeue dead letters.
    DeadLetters {
        /// What to do with them.
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Validate settings and exit non-zero with the problem if invalid.
    CheckConfig,
}

/// `worker dead-letters ...`.
#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// Print dead letters (id, type, attempts, reason), leaving them in place.
    List {
        /// Only this queue (both when omitted).
        #[arg(long, value_enum)]
        queue: Option<QueueArg>,
        /// At most this many per queue.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print one dead letter with its body (one-time tokens redacted).
    Show {
        /// The message id.
        id: String,
    },
    /// Move dead letters back to their queue for another full set of attempts.
    Replay {
        /// Only this queue (both when omitted).
        #[arg(long, value_enum)]
        queue: Option<QueueArg>,
        /// At most this many per queue.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Only the message with this id.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// Filters shared by `list` and `replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Only jobs of this type: send-verification, send-password-reset,
    /// send-invitation, auth-event.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only letters whose reason contains this text (any case), e.g. "550".
    #[arg(long)]
    pub reason: Option<String>,
}

/// A queue on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QueueArg {
    /// The email queue.
    Email,
    /// The notification queue.
    Notification,
}

fn queues(arg: Option<QueueArg>) -> Vec<JobQueue> {
    match arg {
        Some(QueueArg::Email) => vec![JobQueue::Email],
        Some(QueueArg::Notification) => vec![JobQueue::Notification],
        None => JobQueue::ALL.to_vec(),
    }
}

/// Runs the chosen command.
///
/// # Errors
/// Anything that stops the command, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.config)?;
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::CheckConfig = command {
        println!("configuration OK (profile {:?})", settings.app.env);
        println!("  admin {}  concurrency {}", settings.worker.admin_listen, settings.worker.concurrency);
        return Ok(());
    }
    shared::telemetry::init_tracing(&settings.log).context("initialising logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        match command {
            Command::Run | Command::CheckConfig => {
                let app = Application::build(&settings).await?;
                tracing::info!(admin = %app.admin_addr(), "worker starting");
                app.run_until_stopped(shutdown_signal()).await?;
                tracing::info!("worker stopped");
                Ok(())
            }
            Command::DeadLetters { action } => dead_letter_command(&settings, action).await,
        }
    })
}

/// Where dead letters live: RabbitMQ's dead-letter queues, or, in single-node mode
/// (no `RABBITMQ_URL`), the outbox rows the gateway gave up on.
enum Letters {
    Broker(queue::Config),
    Outbox(sqlx::PgPool),
}

impl Letters {
    fn from_settings(settings: &Settings) -> anyhow::Result<Letters> {
        Ok(match queue::Config::from_settings(settings) {
            Some(broker) => Letters::Broker(broker),
            None => Letters::Outbox(shared::db::pool(&settings.database).context("building the database pool")?),
        })
    }

    async fn list(
        &self,
        queues: &[JobQueue],
        limit: usize,
        filter: &dead_letters::Filter,
    ) -> anyhow::Result<Vec<dead_letters::DeadLetter>> {
        Ok(match self {
            Letters::Broker(broker) => dead_letters::list(broker, queues, limit, filter).await?,
            Letters::Outbox(pool) => dead_letters::list_outbox(pool, queues, limit, filter).await?,
        })
    }

    async fn show(&self, id: &str) -> anyhow::Result<Option<(dead_letters::DeadLetter, String)>> {
        Ok(match self {
            Letters::Broker(broker) => dead_letters::show(broker, &JobQueue::ALL, id).await?,
            Letters::Outbox(pool) => dead_letters::show_outbox(pool, id).await?,
        })
    }

    async fn replay(
        &self,
        queues: &[JobQueue],
        limit: usize,
        filter: &dead_letters::Filter,
    ) -> anyhow::Result<Vec<dead_letters::DeadLetter>> {
        Ok(match self {
            Letters::Broker(broker) => dead_letters::replay(broker, queues, limit, filter).await?,
            Letters::Outbox(pool) => dead_letters::replay_outbox(pool, queues, limit, filter).await?,
        })
    }
}

async fn dead_letter_command(settings: &Settings, action: DeadLetterAction) -> anyhow::Result<()> {
    let letters = Letters::from_settings(settings)?;
    match action {
        DeadLetterAction::List { queue, limit, filter } => {
            let filter = dead_letters::Filter { id: None, kind: filter.kind, reason: filter.reason };
            let letters = letters.list(&queues(queue), limit, &filter).await.context("listing dead letters")?;
            println!("{:<13} {:<36} {:<20} {:>8} {:<20} REASON", "QUEUE", "ID", "TYPE", "ATTEMPTS", "DEAD AT");
            for l in &letters {
                println!(
                    "{:<13} {:<36} {:<20} {:>8} {:<20} {}",
                    l.queue,
                    l.id,
                    l.kind,
                    l.attempts,
                    dead_at(l),
                    l.reason
                );
            }
            println!("{} dead letter(s)", letters.len());
        }
        DeadLetterAction::Show { id } => {
            let Some((l, body)) = letters.show(&id).await.context("reading dead letters")? else {
                anyhow::bail!("no dead letter {id}");
            };
            println!("id        {}\nqueue     {}\ntype      {}\nattempts  {}", l.id, l.queue, l.kind, l.attempts);
            println!("dead at   {}\nreason    {}\nbody\n{body}", dead_at(&l), l.reason);
        }
        DeadLetterAction::Replay { queue, limit, id, filter } => {
            let filter = dead_letters::Filter { id, kind: filter.kind, reason: filter.reason };
            let moved = letters.replay(&queues(queue), limit, &filter).await.context("replaying dead letters")?;
            for l in &moved {
                println!("requeued {} {} on {}", l.id, l.kind, l.queue);
            }
            println!("{} dead letter(s) requeued", moved.len());
        }
    }
    Ok(())
}

/// When a letter died, as an RFC 3339 UTC time, or `-`.
fn dead_at(letter: &dead_letters::DeadLetter) -> String {
    letter
        .dead_at
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
