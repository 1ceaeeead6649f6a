//! The cross-field rules settings must meet; [`Settings::load`] and `check-config`
//! run them, and every message names the variable at fault.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::assertion::AssertionAlgorithm;

use super::*;

impl Settings {
    /// Checks the cross-field rules; called by [`Settings::load`].
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the variable at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::Invalid(msg));
        for (var, secret) in [("JWT_SECRET", &self.jwt.secret), ("JWT_REFRESH_SECRET", &self.jwt.refresh_secret)] {
            let value = secret.expose_secret();
            if value.is_empty() {
                return invalid(format!("{var} is not set"));
            }
            if self.app.env == Profile::Production {
                if value.len() < MIN_SECRET_BYTES {
                    return invalid(format!(
                        "{var} is {} bytes long; at least {MIN_SECRET_BYTES} are required outside APP_ENV=development",
                        value.len()
                    ));
                }
                if EXAMPLE_SECRETS.contains(&value) || value.starts_with("change-me") {
                    return invalid(format!(
                        "{var} is still the example value; generate one with `openssl rand -hex 32`"
                    ));
                }
            }
        }
        if self.jwt.secret.expose_secret() == self.jwt.refresh_secret.expose_secret() {
            return invalid("JWT_SECRET and JWT_REFRESH_SECRET must differ".into());
        }
        if self.jwt.access_ttl < Duration::from_secs(10) || self.jwt.access_ttl > Duration::from_secs(3600) {
            return invalid("JWT_ACCESS_TTL must be between 10s and 1h (access tokens are short-lived)".into());
        }
        if self.jwt.refresh_ttl <= self.jwt.access_ttl {
            return invalid("JWT_REFRESH_TTL must be longer than JWT_ACCESS_TTL".into());
        }
        let redelivery_window = self.queue.retry_max_delay.saturating_mul(self.queue.max_attempts);
        if self.queue.retention < redelivery_window {
            return invalid(format!(
                "QUEUE_RETENTION must be at least QUEUE_MAX_ATTEMPTS x QUEUE_RETRY_MAX_DELAY ({}): a message \
                 redelivered after its record was deleted would be sent twice",
                humantime::format_duration(redelivery_window)
            ));
        }
        if self.queue.purge_interval.is_zero() {
            return invalid("QUEUE_PURGE_INTERVAL must be more than 0".into());
        }
        if self.jwt.issuer.is_empty() || self.jwt.audience.is_empty() {
            return invalid("JWT_ISSUER and JWT_AUDIENCE must not be empty".into());
        }
        // Parsed here, so a malformed URL fails at start naming its variable: the
        // clients' own parse errors repeat the URL, password included.
        if let Some(url) = &self.rabbitmq.url {
            if url.expose_secret().parse::<lapin::uri::AMQPUri>().is_err() {
                return invalid("RABBITMQ_URL is not an amqp:// or amqps:// URL (value not shown)".into());
            }
        }
        if let Some(url) = &self.redis.url {
            if redis::IntoConnectionInfo::into_connection_info(url.expose_secret()).is_err() {
                return invalid("REDIS_URL is not a redis:// or unix: URL this build can use (value not shown)".into());
            }
        }
        if self.rate_limit.max == 0 || self.rate_limit.window.is_zero() {
            return invalid("RATE_LIMIT_MAX and RATE_LIMIT_WINDOW must be positive".into());
        }
        if self.tenants.invitation_ttl < Duration::from_secs(60) {
            return invalid("INVITATION_TTL must be at least 1m".into());
        }
        if self.gateway.body_limit < 1024 {
            return invalid("GATEWAY_BODY_LIMIT must be at least 1024 bytes".into());
        }
        let assertion = self.gateway.assertion_secret.expose_secret();
        if self.gateway.assertion_algorithm == AssertionAlgorithm::Hs256 {
            if assertion.is_empty() {
                return invalid("GATEWAY_ASSERTION_ALGORITHM=HS256 needs GATEWAY_ASSERTION_SECRET".into());
            }
            if self.app.env == Profile::Production && assertion.len() < MIN_SECRET_BYTES {
                return invalid(format!("GATEWAY_ASSERTION_SECRET must be at least {MIN_SECRET_BYTES} bytes"));
            }
            if assertion == self.jwt.secret.expose_secret() {
                return invalid("GATEWAY_ASSERTION_SECRET must differ from JWT_SECRET (upstreams hold it)".into());
            }
        }
        if !(1..=60).contains(&self.gateway.assertion_ttl.as_secs()) {
            return invalid("GATEWAY_ASSERTION_TTL must be between 1s and 60s (assertions are per request)".into());
        }
        if self.database.max_connections == 0 {
            return invalid("DATABASE_MAX_CONNECTIONS must be at least 1".into());
        }
        if self.queue.max_attempts == 0 {
            return invalid("QUEUE_MAX_ATTEMPTS must be at least 1".into());
        }
        if self.queue.retry_base_delay.is_zero() || self.queue.retry_max_delay < self.queue.retry_base_delay {
            return invalid("QUEUE_RETRY_BASE_DELAY must be positive and at most QUEUE_RETRY_MAX_DELAY".into());
        }
        if !self.queue.prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c)) {
            return invalid(format!("QUEUE_PREFIX {:?} may only hold letters, digits and . _ - :", self.queue.prefix));
        }
        if self.queue.outbox_batch == 0 || self.queue.outbox_poll_interval.is_zero() {
            return invalid("QUEUE_OUTBOX_BATCH and QUEUE_OUTBOX_POLL_INTERVAL must be positive".into());
        }
        if self.worker.concurrency == 0 || self.smtp.pool_size == 0 || self.smtp.timeout.is_zero() {
            return invalid("WORKER_CONCURRENCY, SMTP_POOL_SIZE and SMTP_TIMEOUT must be positive".into());
        }
        if self.mail.transport == MailTransport::Smtp && self.smtp.host.is_empty() {
            return invalid("SMTP_HOST must be set with MAIL_TRANSPORT=smtp".into());
        }
        if self.mail.transport == MailTransport::Log && self.app.env == Profile::Production {
            return invalid(
                "MAIL_TRANSPORT=log writes one-time links into the log: use it to try tenantgate out, \
                 not with APP_ENV=production"
                    .into(),
            );
        }
        self.validate_portal()?;
        self.gateway.tls.validate(self.gateway.listen)?;
        self.validate_verify_listen()?;
        for prefix in &self.gateway.identity_header_prefixes {
            if axum::http::HeaderName::from_bytes(prefix.as_bytes()).is_err() {
                return invalid(format!(
                    "GATEWAY_IDENTITY_HEADER_PREFIXES entry {prefix:?} is not a header name prefix like X-Internal-"
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.log.access_sample) {
            return invalid(format!("LOG_ACCESS_SAMPLE {} must be between 0 and 1", self.log.access_sample));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(format!("LOG_LEVEL {:?} is not a valid filter", self.log.level));
        }
        Ok(())
    }

    /// `GATEWAY_VERIFY_LISTEN` believes every peer: only on an address the
    /// internet cannot reach, and not one of the other listeners.
    fn validate_verify_listen(&self) -> Result<(), Error> {
        let Some(verify) = self.gateway.verify_listen else { return Ok(()) };
        let private = match verify.ip() {
            std::net::IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
            std::net::IpAddr::V6(ip) => {
                ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        if !private {
            return Err(Error::Invalid(format!(
                "GATEWAY_VERIFY_LISTEN {verify} must be a loopback or private address (it believes every peer): \
                 not a public or wildcard one"
            )));
        }
        let others = [Some(self.gateway.listen), Some(self.gateway.admin_listen), self.gateway.tls.listen];
        if others.contains(&Some(verify)) {
            return Err(Error::Invalid(format!(
                "GATEWAY_VERIFY_LISTEN {verify} is already another listener (GATEWAY_LISTEN, _ADMIN_LISTEN or \
                 _TLS_LISTEN)"
            )));
        }
        Ok(())
    }

    /// Cookie names and the portal's look: values that end up in headers and CSS.
    fn validate_portal(&self) -> Result<(), Error> {
        let g = &self.gateway;
        for (var, name) in [
            ("GATEWAY_ACCESS_COOKIE", &g.access_cookie),
            ("GATEWAY_REFRESH_COOKIE", &g.refresh_cookie),
            ("GATEWAY_TENANT_COOKIE", &g.tenant_cookie),
        ] {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(Error::Invalid(format!("{var} {name:?} must be letters, digits, _ or -")));
            }
        }
        if g.access_cookie == g.refresh_cookie
            || g.access_cookie == g.tenant_cookie
            || g.refresh_cookie == g.tenant_cookie
        {
            return Err(Error::Invalid(
                "GATEWAY_ACCESS_COOKIE, GATEWAY_REFRESH_COOKIE and GATEWAY_TENANT_COOKIE must differ".into(),
            ));
        }
        Ok(())
    }
}
