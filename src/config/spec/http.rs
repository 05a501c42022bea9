//! `type: http`.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use super::expect::{JsonRule, Pattern, Phrase, StatusRule};
use super::tls::TlsVerify;
use super::{AddressFamily, Problems, default_max_body, yes};
use crate::config::yaml;

/// `type: http`: a health endpoint answers as expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// HTTP method (default GET).
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers. Values may use `${ENV}` / `${file:...}`; they are never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as-is.
    #[serde(default)]
    pub body: Option<String>,
    /// What the response must look like.
    #[serde(default)]
    pub expect: HttpExpect,
    /// Follow 3xx redirects (default true), at most `max_redirects` (default 10).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Largest body read, in bytes (default 1 MiB); a larger body fails the probe. 0: no
    /// limit (a body no rule reads is counted as it streams, never held).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The body is compressed this way (`gzip`, `deflate`, `identity`): asked for with
    /// Accept-Encoding (unless `headers` sets it), decoded before the rules and the length.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Offer HTTP/2 to https targets by ALPN (the server chooses; default false, true in a
    /// blackbox_exporter file as there).
    #[serde(default)]
    pub enable_http2: bool,
    /// Fail when the final response came over TLS (`fail_if_ssl`) or did not.
    #[serde(default)]
    pub fail_if_ssl: bool,
    #[serde(default)]
    pub fail_if_not_ssl: bool,
    /// Accepted HTTP versions of the final response (`HTTP/1.1`, `HTTP/1.0`); any if empty.
    #[serde(default)]
    pub valid_http_versions: Vec<String>,
    /// Connect to one address of this family (`ip4`, `ip6`), as blackbox_exporter does;
    /// unset: every address in resolver order until one accepts.
    #[serde(default)]
    pub preferred_ip_protocol: Option<AddressFamily>,
    /// With `preferred_ip_protocol`: use the other family when the name has none of it.
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    /// Go through this HTTP proxy (`http://[user:password@]host:port`): CONNECT for https
    /// targets, absolute-form requests for http ones.
    #[serde(default)]
    pub proxy_url: Option<ProxyUrl>,
    /// Hosts that skip the proxy: comma-separated names, `.domains`, IPs, CIDRs, `*`.
    #[serde(default)]
    pub no_proxy: Option<String>,
    /// Use HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment.
    #[serde(default)]
    pub proxy_from_environment: bool,
    /// Headers sent to the proxy with CONNECT.
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
    /// With a proxy: do not resolve the target here (the proxy resolves it).
    #[serde(default)]
    pub skip_resolve_phase_with_proxy: bool,
    /// OAuth 2.0 client credentials: a token from `token_url` before each request, sent as
    /// `Authorization: Bearer`.
    #[serde(default)]
    pub oauth2: Option<OAuth2>,
    /// Certificate verification for https targets.
    #[serde(default)]
    pub tls: TlsVerify,
    /// Regexes (any case) that, in a 503 body or a 1011/1013 close reason, say the target
    /// is starting: reason `starting`, not an outage. Default: `defaults.starting_patterns`,
    /// else startup in progress, starting up, warming up, not ready, initializing.
    #[serde(default)]
    pub starting_patterns: Option<Vec<Phrase>>,
}

/// `oauth2:` (the client credentials grant, RFC 6749 section 4.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub client_id: String,
    /// Use `${ENV}` or `${file:...}` (or `client_secret_file` in a blackbox file).
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub token_url: HttpUrl,
    /// More form parameters of the token request.
    #[serde(default)]
    pub endpoint_params: BTreeMap<String, String>,
}

/// An http(s) URL with a host, checked when the config loads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpUrl(pub Url);

impl TryFrom<String> for HttpUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        super::parse_http_url(&s).map(HttpUrl)
    }
}

/// How a response body is compressed (`compression:`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum Compression {
    Gzip,
    /// Raw DEFLATE (RFC 1951), as blackbox_exporter reads it.
    Deflate,
    Identity,
}

impl Compression {
    pub fn token(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Deflate => "deflate",
            Compression::Identity => "identity",
        }
    }
}

impl TryFrom<String> for Compression {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "gzip" => Ok(Compression::Gzip),
            "deflate" => Ok(Compression::Deflate),
            "identity" => Ok(Compression::Identity),
            "br" => Err(
                "`br`: Brotli bodies are not supported (pathwatch decodes gzip and deflate)".into(),
            ),
            _ => Err(format!(
                "`{s}` is not a compression (gzip, deflate, identity)"
            )),
        }
    }
}

/// An HTTP proxy's URL, checked when the config loads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct ProxyUrl(pub url::Url);

impl TryFrom<String> for ProxyUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        parse_proxy(&s).map(ProxyUrl)
    }
}

/// A proxy URL: `http://[user:password@]host[:port]` (a bare host:port is http).
pub fn parse_proxy(text: &str) -> Result<Url, String> {
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&full).map_err(|e| format!("`{text}` is not a proxy URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "`{}` proxies are not supported (http:// proxies are, with CONNECT for https targets)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("proxy URL `{text}` has no host"));
    }
    Ok(url)
}

/// Whether an Accept-Encoding value accepts `token` (by name or `*`, with a q above 0).
fn accepts(value: &str, token: &str) -> bool {
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f64>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case(token) || name == "*") && !q_zero
    })
}

fn default_method() -> String {
    "GET".into()
}
fn default_max_redirects() -> u32 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Accepted status codes: numbers (`200`), classes (`2xx`) or ranges (`200-299`).
    /// Default `[2xx]`.
    #[serde(default = "default_status")]
    pub status: Vec<StatusRule>,
    /// Response header name -> regex its value must match.
    #[serde(default)]
    pub headers: BTreeMap<String, Pattern>,
    /// Regexes the body must match.
    #[serde(default)]
    pub body_matches: Vec<Pattern>,
    /// Regexes the body must not match.
    #[serde(default)]
    pub body_not_matches: Vec<Pattern>,
    /// Rules on fields of a JSON body.
    #[serde(default)]
    pub json: Vec<JsonRule>,
    /// Header rules as blackbox_exporter writes them (`fail_if_header_matches`,
    /// `fail_if_header_not_matches`).
    #[serde(default)]
    pub header_rules: Vec<HeaderRule>,
}

/// A rule on every value of one response header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    pub header: String,
    pub regexp: Pattern,
    /// true: fail when a value matches; false: fail when none does.
    #[serde(default)]
    pub fail_if_matches: bool,
    /// A missing header passes.
    #[serde(default)]
    pub allow_missing: bool,
}

impl Default for HttpExpect {
    fn default() -> Self {
        HttpExpect {
            status: default_status(),
            headers: BTreeMap::new(),
            body_matches: Vec::new(),
            body_not_matches: Vec::new(),
            json: Vec::new(),
            header_rules: Vec::new(),
        }
    }
}

impl HttpExpect {
    /// Whether a rule reads the body (else it can be counted as it streams).
    pub fn reads_body(&self) -> bool {
        !(self.body_matches.is_empty() && self.body_not_matches.is_empty() && self.json.is_empty())
    }
}

fn default_status() -> Vec<StatusRule> {
    vec![StatusRule::Range(200, 299)]
}

impl HttpSpec {
    /// A request made on the way to another check (a login, a ticket, a stream's POST):
    /// no redirects, no rules, at most `max_body_bytes` read.
    pub fn side_request(
        method: &str,
        headers: BTreeMap<String, String>,
        tls: TlsVerify,
        max_body_bytes: usize,
    ) -> HttpSpec {
        HttpSpec {
            method: method.to_string(),
            headers,
            body: None,
            expect: HttpExpect::default(),
            follow_redirects: false,
            max_redirects: 0,
            max_body_bytes,
            compression: None,
            enable_http2: false,
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            valid_http_versions: Vec::new(),
            preferred_ip_protocol: None,
            ip_protocol_fallback: true,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            skip_resolve_phase_with_proxy: false,
            oauth2: None,
            tls,
            starting_patterns: None,
        }
    }

    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        if hyper::Method::from_bytes(self.method.as_bytes()).is_err() {
            out.value(
                yaml::child(path, "method"),
                format!("`{}` is not an HTTP method", self.method),
            );
        }
        out.headers(path, &self.headers);
        for name in self.expect.headers.keys() {
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                let hp = yaml::child(&yaml::child(path, "expect.headers"), name);
                out.key(hp, format!("`{name}` is not a valid header name"));
            }
        }
        out.json_rules(&yaml::child(path, "expect.json"), &self.expect.json);
        for (i, v) in self.valid_http_versions.iter().enumerate() {
            if !["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"].contains(&v.as_str()) {
                let why = if v.starts_with("HTTP/3") {
                    "HTTP/3 is not supported"
                } else {
                    "expected HTTP/1.0, HTTP/1.1 or HTTP/2.0"
                };
                out.value(
                    yaml::index(&yaml::child(path, "valid_http_versions"), i),
                    format!("`{v}`: {why}"),
                );
            }
        }
        if let Some(c) = self.compression
            && let Some((name, accept)) = self
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("accept-encoding"))
            && !accepts(accept, c.token())
        {
            out.value(
                yaml::child(&yaml::child(path, "headers"), name),
                format!(
                    "Accept-Encoding `{accept}` does not accept `{}`, which `compression` expects the body in",
                    c.token()
                ),
            );
        }
        if self.fail_if_ssl && self.fail_if_not_ssl {
            out.value(
                yaml::child(path, "fail_if_not_ssl"),
                "`fail_if_ssl` and `fail_if_not_ssl` together fail every probe",
            );
        }
        if self.max_redirects > 100 {
            out.value(yaml::child(path, "max_redirects"), "at most 100");
        }
    }
}
