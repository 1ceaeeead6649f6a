//! Outgoing mail: rendering ([`render`]), building the MIME message, and handing
//! it to a transport (pooled SMTP; `.eml` files for development; or the log, to try
//! the product out without a mail server).

pub mod render;

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use shared::config::{MailSettings, MailTransport, SmtpSettings, SmtpTls};

pub use render::{Rendered, Templates};

/// Errors building the mailer or a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `SMTP_FROM` is not a mailbox like `App <no-reply@example.com>`.
    #[error("SMTP_FROM is not a valid mailbox")]
    From(#[source] lettre::address::AddressError),
    /// The SMTP relay could not be configured (TLS setup).
    #[error("SMTP transport setup failed")]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// `MAIL_DIR` could not be created.
    #[error("MAIL_DIR {0} cannot be created")]
    Dir(String, #[source] std::io::Error),
    /// The recipient is not a valid address.
    #[error("invalid recipient address")]
    Recipient(#[source] lettre::address::AddressError),
    /// The message could not be assembled.
    #[error("message could not be built")]
    Build(#[source] lettre::error::Error),
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A 4xx reply, a timeout or a lost connection: try again later.
    #[error("temporary SMTP failure: {0}")]
    Transient(String),
    /// Could not connect at all: try again later.
    #[error("SMTP connection failed: {0}")]
    Connection(String),
    /// A 5xx reply (bad recipient, refused content): trying again will not help.
    #[error("permanent SMTP failure: {0}")]
    Permanent(String),
}

impl SendError {
    /// The metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            SendError::Transient(_) => "transient",
            SendError::Connection(_) => "connection",
            SendError::Permanent(_) => "permanent",
        }
    }
}

/// The SMTP steps one send takes at most (connect, greeting, EHLO, STARTTLS,
/// AUTH, MAIL, RCPT, DATA and its end), each bounded by `SMTP_TIMEOUT`.
const SMTP_STEPS: u32 = 9;

enum Transport {
    /// The pooled SMTP transport, and the most one send may take in all.
    Smtp(AsyncSmtpTransport<Tokio1Executor>, Duration),
    File(AsyncFileTransport<Tokio1Executor>),
    /// `MAIL_TRANSPORT=log` (refused in production by settings validation).
    Log,
}

/// A message ready to send: the MIME message, and for the log transport what a
/// reader needs of it (the MIME body is transfer-encoded).
pub struct Outgoing {
    message: Message,
    to: String,
    subject: String,
    text: String,
}

/// Sends rendered mail through the configured transport. Cheap to share: the SMTP
/// transport keeps a pool of open connections (`SMTP_POOL_SIZE`) and opens new ones
/// after a server outage by itself.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// The domain of the From address, for Message-ID headers.
    domain: String,
}

impl Mailer {
    /// Builds the transport `MAIL_TRANSPORT` names. Opens no connection yet.
    ///
    /// # Errors
    /// [`Error`] on a bad `SMTP_FROM`, TLS setup failure or an unusable `MAIL_DIR`.
    pub fn new(smtp: &SmtpSettings, mail: &MailSettings) -> Result<Mailer, Error> {
        let from: Mailbox = smtp.from.parse().map_err(Error::From)?;
        let domain = from.email.domain().to_owned();
        let transport = match mail.transport {
            MailTransport::File => {
                std::fs::create_dir_all(&mail.dir).map_err(|e| Error::Dir(mail.dir.display().to_string(), e))?;
                Transport::File(AsyncFileTransport::new(&mail.dir))
            }
            MailTransport::Log => {
                tracing::warn!("MAIL_TRANSPORT=log: emails, with their one-time links, go to this log, not to anyone");
                Transport::Log
            }
            MailTransport::Smtp => {
                let builder = match smtp.tls {
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
                    SmtpTls::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(Error::Smtp)?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(Error::Smtp)?,
                };
                let mut builder = builder
                    .port(smtp.port)
                    .timeout(Some(smtp.timeout))
                    .pool_config(PoolConfig::new().max_size(smtp.pool_size).idle_timeout(Duration::from_secs(60)));
                if !smtp.user.is_empty() {
                    builder = builder
                        .credentials(Credentials::new(smtp.user.clone(), smtp.password.expose_secret().to_owned()));
                }
                // lettre bounds the connect by `timeout`, not the replies: a server
                // that takes the message and never answers would hold the job (and,
                // in single-node mode, its outbox transaction) forever.
                Transport::Smtp(builder.build(), smtp.timeout.saturating_mul(SMTP_STEPS))
            }
        };
        Ok(Mailer { transport, from, domain })
    }

    /// Assembles a multipart/alternative (text + HTML) message to `to`, with a
    /// Message-ID derived from the job id so a resend is recognisable.
    ///
    /// # Errors
    /// [`Error::Recipient`] or [`Error::Build`].
    pub fn build(&self, to: &str, message_id: uuid::Uuid, rendered: Rendered) -> Result<Outgoing, Error> {
        let address: lettre::Address = to.parse().map_err(Error::Recipient)?;
        let (subject, text) = match self.transport {
            Transport::Log => (rendered.subject.clone(), rendered.text.clone()),
            _ => (String::new(), String::new()),
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(rendered.subject)
            .message_id(Some(format!("<{message_id}@{}>", self.domain)))
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(Error::Build)?;
        Ok(Outgoing { message, to: to.to_owned(), subject, text })
    }

    /// Hands `outgoing` to the transport.
    ///
    /// # Errors
    /// [`SendError`], classified for the retry decision.
    pub async fn send(&self, outgoing: Outgoing) -> Result<(), SendError> {
        let Outgoing { message, to, subject, text } = outgoing;
        match &self.transport {
            Transport::Smtp(smtp, limit) => match tokio::time::timeout(*limit, smtp.send(message)).await {
                Ok(sent) => sent,
                Err(_) => return Err(SendError::Transient(format!("the SMTP server did not finish within {limit:?}"))),
            }
            .map(|_| ())
            .map_err(|e| {
                let text = shared::telemetry::error_chain(&e);
                if e.is_permanent() {
                    SendError::Permanent(text)
                } else if e.is_transient() || e.is_timeout() || e.is_response() {
                    SendError::Transient(text)
                } else {
                    SendError::Connection(text)
                }
            }),
            Transport::File(file) => file
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(shared::telemetry::error_chain(&e))),
            Transport::Log => {
                tracing::info!(target: "tenantgate::mail", %to, %subject, body = %text, "email (MAIL_TRANSPORT=log)");
                Ok(())
            }
        }
    }
}
