//! The web config (`--web.config.file`) in the exporter-toolkit format that Prometheus and
//! its exporters read: TLS for the listener (optionally verifying client certificates),
//! basic-auth users with bcrypt hashes, and extra response headers. Pure data: the server
//! builds the TLS settings from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, ConfigErrors};
use super::yaml;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve HTTPS instead of HTTP.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// user -> bcrypt hash (`htpasswd -nBC 10 user`); set: every request needs one of them.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain (leaf first) and its private key; relative to the web
    /// config's folder; re-read when they change, so a rotated certificate needs no restart.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_auth_type: ClientAuth,
    /// CAs a client certificate must chain to.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `TLS12` (default) or `TLS13`.
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
}

/// Which client certificates the listener asks for (exporter-toolkit names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    /// A certificate is checked against `client_ca_file` when the client sends one.
    VerifyClientCertIfGiven,
    /// Every client presents a certificate that chains to `client_ca_file`.
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Headers added to every response (e.g. `Strict-Transport-Security`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl WebConfig {
    /// Reads a web config; relative file names are resolved from its folder. Every problem
    /// comes with its position, as in the main config.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigErrors> {
        let file = path.display().to_string();
        let error = |pos: Option<yaml::Pos>, at: &str, message: String| ConfigError {
            file: file.clone(),
            line: pos.map(|p| p.line),
            col: pos.map(|p| p.col),
            path: at.to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![error(
                None,
                "",
                format!("cannot read web config: {e}"),
            )])
        })?;
        let no_env = |_: &str| None;
        let doc = yaml::parse(&text, Some(&no_env)).map_err(|errs| {
            ConfigErrors(
                errs.into_iter()
                    .map(|e| error(e.pos, &e.path, e.message))
                    .collect(),
            )
        })?;
        let value = if doc.value.is_null() {
            serde_json::json!({})
        } else {
            doc.value.clone()
        };
        let mut web: WebConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." { String::new() } else { at };
            ConfigErrors(vec![error(
                doc.position(&at, false),
                &at,
                e.inner().to_string(),
            )])
        })?;
        let mut problems = Vec::new();
        let mut problem = |at: &str, message: String| {
            problems.push(error(doc.position(at, false), at, message));
        };
        for (user, hash) in &web.basic_auth_users {
            if !["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|p| hash.starts_with(p))
            {
                problem(
                    &yaml::child("basic_auth_users", user),
                    "not a bcrypt hash (make one with `htpasswd -nBC 10 USER`)".into(),
                );
            }
        }
        for name in web.http_server_config.headers.keys() {
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problem(
                    &yaml::child("http_server_config.headers", name),
                    format!("`{name}` is not a valid header name"),
                );
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut web.tls_server_config {
            tls.cert_file = dir.join(&tls.cert_file);
            tls.key_file = dir.join(&tls.key_file);
            tls.client_ca_file = tls.client_ca_file.as_ref().map(|f| dir.join(f));
            if tls.client_auth_type != ClientAuth::NoClientCert && tls.client_ca_file.is_none() {
                problem(
                    "tls_server_config.client_ca_file",
                    "verifying client certificates needs `client_ca_file`".into(),
                );
            }
        }
        if problems.is_empty() {
            Ok(web)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// The files the listener reads (a change to any of them is a rotation).
    pub fn files(&self) -> Vec<PathBuf> {
        self.tls_server_config
            .iter()
            .flat_map(|t| {
                [
                    Some(t.cert_file.clone()),
                    Some(t.key_file.clone()),
                    t.client_ca_file.clone(),
                ]
            })
            .flatten()
            .collect()
    }
}
