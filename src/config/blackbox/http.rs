//! blackbox's `<http_probe>` (with the HTTP client settings inline) into an [`HttpSpec`]:
//! each field mapped, or refused where it is set with the reason.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::config::spec::expect::{GoPattern, StatusRule};
use crate::config::spec::http::{Compression, HeaderRule, HttpUrl, OAuth2, ProxyUrl};
use crate::config::spec::{AddressFamily, HttpExpect, HttpSpec, TlsVerify};
use crate::config::validate::Validator;
use crate::config::yaml;

/// blackbox's `<http_probe>`, with the HTTP client settings inline.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbHttp {
    #[serde(default)]
    valid_status_codes: Vec<u16>,
    #[serde(default)]
    valid_http_versions: Vec<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body_size_limit: Option<Value>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default = "yes")]
    follow_redirects: bool,
    #[serde(default)]
    fail_if_ssl: bool,
    #[serde(default)]
    fail_if_not_ssl: bool,
    #[serde(default)]
    fail_if_body_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_body_not_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_header_matches: Vec<BbHeaderMatch>,
    #[serde(default)]
    fail_if_header_not_matches: Vec<BbHeaderMatch>,
    #[serde(default)]
    tls_config: TlsVerify,
    #[serde(default)]
    basic_auth: Option<BbBasicAuth>,
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    authorization: Option<BbAuthorization>,
    #[serde(default)]
    enable_http2: Option<bool>,
    #[serde(default)]
    enable_http3: Option<bool>,
    #[serde(default)]
    preferred_ip_protocol: Option<AddressFamily>,
    #[serde(default = "yes")]
    ip_protocol_fallback: bool,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_file: Option<PathBuf>,
    // Documented by blackbox and not implemented here: refused where they are set.
    #[serde(default)]
    fail_if_body_json_matches_cel: Option<Value>,
    #[serde(default)]
    fail_if_body_json_not_matches_cel: Option<Value>,
    #[serde(default)]
    http_headers: BTreeMap<String, BbHeader>,
    #[serde(default)]
    proxy_url: Option<ProxyUrl>,
    #[serde(default)]
    no_proxy: Option<String>,
    #[serde(default)]
    proxy_from_environment: bool,
    #[serde(default)]
    proxy_connect_header: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    skip_resolve_phase_with_proxy: bool,
    #[serde(default)]
    oauth2: Option<BbOAuth2>,
}

fn yes() -> bool {
    true
}

/// blackbox's `<oauth2>`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbOAuth2 {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_file: Option<PathBuf>,
    #[serde(default)]
    scopes: Vec<String>,
    token_url: HttpUrl,
    #[serde(default)]
    endpoint_params: BTreeMap<String, String>,
}

/// One of `http_headers`: values, secrets, files (the last one given is sent).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbHeader {
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbHeaderMatch {
    header: String,
    regexp: String,
    #[serde(default)]
    allow_missing: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbBasicAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    username_file: Option<PathBuf>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbAuthorization {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
    #[serde(default)]
    credentials_file: Option<PathBuf>,
}

impl Validator<'_> {
    pub(super) fn blackbox_http(
        &mut self,
        own: Value,
        path: &str,
        secrets: &mut Vec<String>,
    ) -> Option<HttpSpec> {
        let h: BbHttp = self.section(own, path)?;
        let at = |k: &str| yaml::child(path, k);
        let unsupported = [
            (
                "fail_if_body_json_matches_cel",
                &h.fail_if_body_json_matches_cel,
                "CEL expressions are not supported (no maintained CEL crate fits); use pathwatch's `expect.json` rules in a pathwatch config",
            ),
            (
                "fail_if_body_json_not_matches_cel",
                &h.fail_if_body_json_not_matches_cel,
                "CEL expressions are not supported (no maintained CEL crate fits); use pathwatch's `expect.json` rules in a pathwatch config",
            ),
        ];
        for (key, value, why) in unsupported {
            if value
                .as_ref()
                .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
            {
                self.error(&at(key), true, format!("`{key}`: {why}"));
            }
        }
        if h.enable_http3 == Some(true) {
            self.error(&at("enable_http3"), false, "HTTP/3 is not supported");
        }
        let compression = match h.compression.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => match Compression::try_from(c.to_string()) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.error(&at("compression"), false, e);
                    None
                }
            },
        };
        let mut headers = h.headers.clone();
        let read = |v: &mut Self, file: &PathBuf, key: &str| -> Option<String> {
            let full = v.base_dir().join(file);
            match std::fs::read_to_string(&full) {
                Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_string()),
                Err(e) => {
                    v.error(
                        &at(key),
                        false,
                        format!("cannot read {}: {e}", full.display()),
                    );
                    None
                }
            }
        };
        for (name, given) in &h.http_headers {
            let key = yaml::child(&at("http_headers"), name);
            secrets.extend(given.secrets.iter().cloned());
            let mut last = given.secrets.last().or(given.values.last()).cloned();
            if let Some(file) = given.files.last() {
                let full = self.base_dir().join(file);
                match std::fs::read_to_string(&full) {
                    Ok(s) => {
                        let s = s.trim_end_matches(['\n', '\r']).to_string();
                        secrets.push(s.clone());
                        last = Some(s);
                    }
                    Err(e) => {
                        self.error(&key, false, format!("cannot read {}: {e}", full.display()))
                    }
                }
            }
            match last {
                Some(v) => {
                    headers.insert(name.clone(), v);
                }
                None => self.error(&key, true, "a header needs one of values, secrets, files"),
            }
        }
        let oauth2 = match &h.oauth2 {
            None => None,
            Some(o) => {
                let secret = match (&o.client_secret, &o.client_secret_file) {
                    (Some(s), _) => s.clone(),
                    (None, Some(f)) => read(self, f, "oauth2")?,
                    (None, None) => String::new(),
                };
                secrets.push(secret.clone());
                Some(OAuth2 {
                    client_id: o.client_id.clone(),
                    client_secret: secret,
                    scopes: o.scopes.clone(),
                    token_url: o.token_url.clone(),
                    endpoint_params: o.endpoint_params.clone(),
                })
            }
        };
        if let Some(b) = &h.basic_auth {
            let user = match &b.username_file {
                Some(f) => read(self, f, "basic_auth")?,
                None => b.username.clone().unwrap_or_default(),
            };
            let pass = match &b.password_file {
                Some(f) => read(self, f, "basic_auth")?,
                None => b.password.clone().unwrap_or_default(),
            };
            secrets.push(pass.clone());
            let token = data_encoding::BASE64.encode(format!("{user}:{pass}").as_bytes());
            headers.insert("Authorization".into(), format!("Basic {token}"));
        }
        let bearer = match (&h.bearer_token, &h.bearer_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(read(self, f, "bearer_token_file")?),
            (None, None) => None,
        };
        if let Some(t) = bearer {
            secrets.push(t.clone());
            headers.insert("Authorization".into(), format!("Bearer {t}"));
        }
        if let Some(a) = &h.authorization {
            let creds = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read(self, f, "authorization")?,
                (None, None) => String::new(),
            };
            secrets.push(creds.clone());
            let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
            headers.insert("Authorization".into(), format!("{kind} {creds}"));
        }
        let body = match (&h.body, &h.body_file) {
            (Some(_), Some(_)) => {
                self.error(
                    &at("body_file"),
                    true,
                    "`body` and `body_file` exclude each other",
                );
                None
            }
            (Some(b), None) => Some(b.clone()),
            (None, Some(f)) => Some(read(self, f, "body_file")?),
            (None, None) => None,
        };
        let max_body_bytes = match &h.body_size_limit {
            None => 0,
            Some(v) => match parse_size(v) {
                Ok(n) => n,
                Err(e) => {
                    self.error(&at("body_size_limit"), false, e);
                    0
                }
            },
        };
        let patterns = |v: &mut Self, list: &[String], key: &str| {
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                match GoPattern::text(s) {
                    Ok(p) => out.push(p),
                    Err(e) => v.error(&yaml::index(&at(key), i), false, e),
                }
            }
            out
        };
        let body_not_matches = patterns(
            self,
            &h.fail_if_body_matches_regexp,
            "fail_if_body_matches_regexp",
        );
        let body_matches = patterns(
            self,
            &h.fail_if_body_not_matches_regexp,
            "fail_if_body_not_matches_regexp",
        );
        let mut header_rules = Vec::new();
        for (key, list, fail_if_matches) in [
            ("fail_if_header_matches", &h.fail_if_header_matches, true),
            (
                "fail_if_header_not_matches",
                &h.fail_if_header_not_matches,
                false,
            ),
        ] {
            for (i, m) in list.iter().enumerate() {
                match GoPattern::text(&m.regexp) {
                    Ok(regexp) => header_rules.push(HeaderRule {
                        header: m.header.clone(),
                        regexp,
                        fail_if_matches,
                        allow_missing: m.allow_missing,
                    }),
                    Err(e) => {
                        self.error(&yaml::child(&yaml::index(&at(key), i), "regexp"), false, e)
                    }
                }
            }
        }
        let status = if h.valid_status_codes.is_empty() {
            vec![StatusRule::Range(200, 299)]
        } else {
            h.valid_status_codes
                .iter()
                .map(|c| StatusRule::Code(*c))
                .collect()
        };
        let mut spec = HttpSpec::side_request(
            h.method.as_deref().unwrap_or("GET"),
            headers,
            h.tls_config,
            max_body_bytes,
        );
        spec.body = body;
        spec.follow_redirects = h.follow_redirects;
        spec.max_redirects = 10;
        spec.enable_http2 = h.enable_http2.unwrap_or(true);
        spec.compression = compression;
        spec.oauth2 = oauth2;
        spec.fail_if_ssl = h.fail_if_ssl;
        spec.fail_if_not_ssl = h.fail_if_not_ssl;
        spec.valid_http_versions = h.valid_http_versions;
        spec.preferred_ip_protocol = Some(h.preferred_ip_protocol.unwrap_or_default());
        spec.ip_protocol_fallback = h.ip_protocol_fallback;
        if let Some(p) = &h.proxy_url
            && let Some(pass) = p.0.password()
        {
            secrets.push(pass.to_string());
        }
        secrets.extend(h.proxy_connect_header.values().flatten().cloned());
        spec.proxy_url = h.proxy_url;
        spec.no_proxy = h.no_proxy;
        spec.proxy_from_environment = h.proxy_from_environment;
        spec.proxy_connect_header = h.proxy_connect_header;
        spec.skip_resolve_phase_with_proxy = h.skip_resolve_phase_with_proxy;
        spec.expect = HttpExpect {
            status,
            headers: BTreeMap::new(),
            body_matches,
            body_not_matches,
            json: Vec::new(),
            header_rules,
        };
        Some(spec)
    }
}

/// A size as the exporter toolkit writes it: bytes, or a number with KB/MB/GB/... (powers
/// of 1024, as Prometheus' units package reads them) or KiB/MiB/...; 0 is no limit.
fn parse_size(v: &Value) -> Result<usize, String> {
    let bad = || format!("`{v}` is not a size (e.g. 10MB, 512KiB, 1048576)");
    let text = match v {
        Value::Number(n) => return n.as_u64().map(|n| n as usize).ok_or_else(bad),
        Value::String(s) => s.trim(),
        _ => return Err(bad()),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_the_exporter_toolkit_reads_them() {
        assert_eq!(parse_size(&Value::from("10MB")), Ok(10 << 20));
        assert_eq!(parse_size(&Value::from("512KiB")), Ok(512 << 10));
        assert_eq!(parse_size(&Value::from(4096)), Ok(4096));
        assert!(parse_size(&Value::from("ten")).is_err());
    }
}
