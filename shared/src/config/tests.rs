use super::*;

/// Loads settings from exactly `vars`, in a jail that hides the real environment.
#[allow(clippy::result_large_err)]
fn env(vars: &[(&str, &str)]) -> Result<Settings, Error> {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (k, v) in vars {
            jail.set_env(k, v);
        }
        out = Some(Settings::load_from(Path::new("does-not-exist.toml"), Env::raw()));
        Ok(())
    });
    out.unwrap_or_else(|| Err(Error::Invalid("jail did not run".into())))
}

const GOOD: [(&str, &str); 2] = [
    ("JWT_SECRET", "0123456789abcdef0123456789abcdef-access"),
    ("JWT_REFRESH_SECRET", "0123456789abcdef0123456789abcdef-refresh"),
];

#[test]
fn env_overrides_defaults_and_parses_durations() {
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("JWT_ACCESS_TTL", "30s"),
        ("JWT_REFRESH_TTL", "30d"),
        ("CORS_ORIGINS", "https://a.test, http://b.test:3000"),
    ]);
    let s = env(&vars).unwrap();
    assert_eq!(s.jwt.access_ttl, Duration::from_secs(30));
    assert_eq!(s.jwt.refresh_ttl, Duration::from_secs(30 * 86400));
    let origins: Vec<&str> = s.cors.origins.iter().map(Origin::as_str).collect();
    assert_eq!(origins, ["https://a.test", "http://b.test:3000"]);
    assert_eq!(s.gateway.body_limit, 64 * 1024);
    assert!(s.gateway.cookie_secure, "cookies are Secure unless turned off");
}

#[test]
fn every_duration_setting_accepts_units() {
    let mut vars = GOOD.to_vec();
    vars.extend([("JWT_ACCESS_TTL", "15m"), ("GATEWAY_REFRESH_GRACE", "0s"), ("RATE_LIMIT_WINDOW", "2h")]);
    let s = env(&vars).unwrap();
    assert_eq!(s.jwt.access_ttl, Duration::from_secs(900));
    assert_eq!(s.gateway.refresh_grace, Duration::ZERO);
    assert_eq!(s.rate_limit.window, Duration::from_secs(7200));
}

#[test]
fn portal_look_and_cookie_names_are_checked() {
    for (var, value) in [
        ("PORTAL_PRIMARY_COLOR", "red;}body{display:none"),
        ("PORTAL_LOGO_URL", "javascript:alert(1)"),
        ("PORTAL_LOGO_URL", "//evil.test/logo.png"),
        ("GATEWAY_REFRESH_COOKIE", "tg_access"),
        ("GATEWAY_TENANT_COOKIE", "a b"),
        ("GATEWAY_TRUSTED_DOMAINS", "ok.test, bad/domain"),
    ] {
        let mut vars = GOOD.to_vec();
        vars.push((var, value));
        assert!(env(&vars).is_err(), "{var}={value} accepted");
    }
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("PORTAL_PRIMARY_COLOR", "#0a0"),
        ("PORTAL_LOGO_URL", "https://cdn.test/logo.svg"),
        ("GATEWAY_COOKIE_SECURE", "false"),
        ("GATEWAY_TRUSTED_DOMAINS", "partner.test, other.test"),
    ]);
    let s = env(&vars).unwrap();
    assert!(!s.gateway.cookie_secure);
    let trusted: Vec<&str> = s.gateway.trusted_domains.iter().map(DomainName::as_str).collect();
    assert_eq!(trusted, ["partner.test", "other.test"]);
    assert_eq!(s.portal.primary_color.as_str(), "#0a0");
    assert_eq!(s.product_name(), "tenantgate");
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
fn the_shipped_settings_file_parses() {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("JWT_SECRET", GOOD[0].1);
        jail.set_env("JWT_REFRESH_SECRET", GOOD[1].1);
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
        out = Some(Settings::load_from(&file, Env::raw()));
        Ok(())
    });
    let settings = out.unwrap().unwrap();
    assert_eq!(settings.gateway.routes, PathBuf::from("config/routes"));
    assert_eq!(settings.cache.l1_max_entries, 100_000);
}

#[test]
fn secret_defaults_survive_the_default_layer() {
    let s = env(&GOOD).unwrap();
    assert!(s.redis.url.is_none() && s.rabbitmq.url.is_none(), "no built-in address: single-node mode");
    assert!(s.database.url.expose_secret().starts_with("postgres://"));
    assert!(!format!("{s:?}").contains("0123456789abcdef"), "Debug must redact secrets");
}

#[test]
fn redis_and_rabbitmq_urls_are_optional_and_empty_means_none() {
    let mut vars = GOOD.to_vec();
    vars.extend([("REDIS_URL", "redis://10.0.0.5:6380"), ("RABBITMQ_URL", "  ")]);
    let s = env(&vars).unwrap();
    assert_eq!(s.redis.url.as_ref().map(|u| u.expose_secret().to_owned()).as_deref(), Some("redis://10.0.0.5:6380"));
    assert!(s.rabbitmq.url.is_none(), "blank is unset");
    assert!(!format!("{s:?}").contains("10.0.0.5"), "Debug redacts the URLs (they may hold passwords)");
}

#[test]
fn malformed_broker_and_redis_urls_are_refused_without_their_password() {
    for (var, value) in [("RABBITMQ_URL", "amqp:tenantgate:S3CRETPW@rabbit:5672"), ("REDIS_URL", "redis//:S3CRETPW@h")]
    {
        let mut vars = GOOD.to_vec();
        vars.push((var, value));
        let err = env(&vars).unwrap_err().to_string();
        assert!(err.contains(var) && !err.contains("S3CRETPW"), "{err}");
    }
    let mut vars = GOOD.to_vec();
    vars.extend([("RABBITMQ_URL", "amqps://u:p@rabbit.internal/%2f"), ("REDIS_URL", "redis://:p@cache:6380/0")]);
    env(&vars).unwrap();
}

#[test]
fn short_secret_is_refused_naming_the_variable() {
    let err = env(&[("JWT_SECRET", "short"), GOOD[1]]).unwrap_err().to_string();
    assert!(err.contains("JWT_SECRET"), "{err}");
    assert!(err.contains("32"), "{err}");
}

#[test]
fn example_secret_is_refused_in_production_but_not_in_development() {
    let vars = [("JWT_SECRET", EXAMPLE_SECRETS[0]), ("JWT_REFRESH_SECRET", EXAMPLE_SECRETS[1])];
    let err = env(&vars).unwrap_err().to_string();
    assert!(err.contains("JWT_SECRET") && err.contains("example"), "{err}");
    let mut dev = vars.to_vec();
    dev.push(("APP_ENV", "development"));
    assert!(env(&dev).is_ok());
}

#[test]
fn wildcard_cors_and_bad_log_format_are_refused() {
    let mut vars = GOOD.to_vec();
    vars.push(("CORS_ORIGINS", "*"));
    assert!(env(&vars).unwrap_err().to_string().contains("CORS_ORIGINS"));
    let mut vars = GOOD.to_vec();
    vars.push(("LOG_FORMAT", "xml"));
    assert!(env(&vars).is_err());
}

#[test]
fn env_example_documents_every_variable_with_a_comment() {
    let example = include_str!("../../../.env.example");
    for (var, _) in ENV_VARS {
        let pos = example
            .lines()
            .position(|l| l.starts_with(&format!("{var}=")))
            .unwrap_or_else(|| panic!(".env.example lacks {var}"));
        let lines: Vec<&str> = example.lines().collect();
        assert!(pos > 0 && lines[pos - 1].starts_with('#'), "{var} has no comment above it");
    }
}

#[test]
fn typed_values_are_parsed_once_and_errors_name_the_variable() {
    for (var, value) in [
        ("APP_URL", "app.example.com"),
        ("APP_URL", "https://app.example.com/?x=1"),
        ("CORS_ORIGINS", "https://a.test/path"),
        ("GATEWAY_BASE_DOMAIN", "-bad-.test"),
        ("GATEWAY_TRUSTED_DOMAINS", "ok.test, 10.0.0.1"),
        ("PORTAL_PRIMARY_COLOR", "#12"),
    ] {
        let mut vars = GOOD.to_vec();
        vars.push((var, value));
        let err = env(&vars).unwrap_err().to_string();
        assert!(err.contains(var), "{var}={value}: {err}");
    }
    let mut vars = GOOD.to_vec();
    vars.extend([("APP_URL", "https://App.Example.com/"), ("GATEWAY_BASE_DOMAIN", "Tenants.Example.COM.")]);
    let s = env(&vars).unwrap();
    assert_eq!(s.app.url.base(), "https://app.example.com");
    // One normalization, shared by cookies, CSRF and subdomain tenants.
    assert_eq!(s.gateway.base_domain.as_ref().map(DomainName::as_str), Some("tenants.example.com"));
    assert_eq!(env(&GOOD).unwrap().gateway.base_domain, None, "empty means no subdomain tenants");
}

#[test]
fn retention_must_outlast_redelivery() {
    let mut vars = GOOD.to_vec();
    vars.extend([("QUEUE_RETENTION", "1h"), ("QUEUE_MAX_ATTEMPTS", "8"), ("QUEUE_RETRY_MAX_DELAY", "1h")]);
    let err = env(&vars).unwrap_err().to_string();
    assert!(err.contains("QUEUE_RETENTION"), "{err}");
    vars.push(("QUEUE_RETENTION", "8h"));
    assert_eq!(env(&vars).unwrap().queue.retention, Duration::from_secs(8 * 3600));
}

#[test]
fn upgrade_socket_and_pid_file_default_into_the_runtime_dir() {
    let mut vars = GOOD.to_vec();
    vars.push(("GATEWAY_RUNTIME_DIR", "/run/tg"));
    let s = env(&vars).unwrap();
    assert_eq!((s.upgrade_socket(), s.pid_file()), ("/run/tg/upgrade.sock".into(), "/run/tg/gateway.pid".into()));
    vars.extend([("GATEWAY_UPGRADE_SOCKET", "/run/a/up.sock"), ("GATEWAY_PID_FILE", "/run/b/gw.pid")]);
    let s = env(&vars).unwrap();
    assert_eq!((s.upgrade_socket(), s.pid_file()), ("/run/a/up.sock".into(), "/run/b/gw.pid".into()));
}

#[test]
fn mail_to_the_log_is_for_trying_out_only() {
    let mut vars = GOOD.to_vec();
    vars.push(("MAIL_TRANSPORT", "log"));
    let err = env(&vars).unwrap_err().to_string();
    assert!(err.contains("MAIL_TRANSPORT=log") && err.contains("APP_ENV=production"), "{err}");
    vars.push(("APP_ENV", "development"));
    assert_eq!(env(&vars).unwrap().mail.transport, MailTransport::Log);
}

#[test]
fn access_log_sample_is_a_share() {
    for bad in ["1.5", "-0.1", "half"] {
        let mut vars = GOOD.to_vec();
        vars.push(("LOG_ACCESS_SAMPLE", bad));
        let err = env(&vars).unwrap_err().to_string();
        assert!(err.contains("LOG_ACCESS_SAMPLE") || err.contains("access_sample"), "{bad}: {err}");
    }
    let mut vars = GOOD.to_vec();
    vars.push(("LOG_ACCESS_SAMPLE", "0.25"));
    assert_eq!(env(&vars).unwrap().log.access_sample, 0.25);
    assert_eq!(env(&GOOD).unwrap().log.access_sample, 1.0);
}

#[test]
fn the_verify_listener_is_private_and_its_own() {
    for good in ["127.0.0.1:8081", "10.1.2.3:8081", "192.168.0.5:81", "[::1]:8081", "[fd00::1]:8081"] {
        let mut vars = GOOD.to_vec();
        vars.push(("GATEWAY_VERIFY_LISTEN", good));
        assert_eq!(env(&vars).unwrap().gateway.verify_listen, Some(good.parse().unwrap()), "{good}");
    }
    for bad in ["0.0.0.0:8081", "203.0.113.5:8081", "[::]:8081", "[2001:db8::1]:8081", "127.0.0.1:8080", "nope"] {
        let mut vars = GOOD.to_vec();
        vars.push(("GATEWAY_VERIFY_LISTEN", bad));
        let e = env(&vars).expect_err(bad).to_string();
        assert!(e.contains("GATEWAY_VERIFY_LISTEN") || e.contains("verify_listen"), "{bad}: {e}");
    }
    assert_eq!(env(&GOOD).unwrap().gateway.verify_listen, None);
}
