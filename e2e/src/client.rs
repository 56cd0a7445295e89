//! Reading nodes: JSON-RPC over HTTP and the Prometheus text of `/metrics`, each call bounded
//! in time (a node being killed must not hang a scenario).

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use serde_json::{Value, json};

const CONNECT: Duration = Duration::from_secs(2);
const READ: Duration = Duration::from_secs(10);

fn addr_of(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let host = rest.split('/').next().unwrap_or(rest);
    host.parse()
        .map_err(|err| format!("{url:?}: not an http://IP:PORT URL ({err})"))
}

fn exchange(url: &str, request: &str) -> Result<String, String> {
    let addr = addr_of(url)?;
    let mut stream =
        TcpStream::connect_timeout(&addr, CONNECT).map_err(|err| format!("{url}: {err}"))?;
    stream
        .set_read_timeout(Some(READ))
        .map_err(|err| err.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("{url}: {err}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|err| format!("{url}: {err}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_string())
}

/// `GET path` on `http://IP:PORT`: the body of a 200 answer.
pub fn http_get(url: &str, path: &str) -> Result<String, String> {
    let addr = addr_of(url)?;
    exchange(
        url,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// One JSON-RPC call; `Err` names a transport failure or the node's error object.
pub fn rpc(url: &str, method: &str, params: Value) -> Result<Value, String> {
    let addr = addr_of(url)?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let answer = exchange(
        url,
        &format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )?;
    let mut answer: Value =
        serde_json::from_str(&answer).map_err(|err| format!("{method}: {err}: {answer}"))?;
    if let Some(error) = answer.get("error") {
        return Err(format!("{method}: {error}"));
    }
    Ok(answer["result"].take())
}

/// A 0x-hex quantity of the RPC.
pub fn quantity(value: &Value) -> Result<u64, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("not a quantity: {value}"))?;
    u64::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|err| format!("{text:?}: {err}"))
}

/// One scrape of `/metrics`: every sample by name and labels.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// Parses the Prometheus text format (comments skipped; a line that is no sample is an
    /// error naming it).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .ok_or_else(|| format!("not a sample: {line:?}"))?;
            let value: f64 = value
                .parse()
                .map_err(|err| format!("{line:?}: value: {err}"))?;
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .ok_or_else(|| format!("{line:?}: unclosed labels"))?;
                    let mut labels = BTreeMap::new();
                    for pair in split_labels(inner) {
                        let (key, value) = pair
                            .split_once('=')
                            .ok_or_else(|| format!("{line:?}: label {pair:?}"))?;
                        labels.insert(key.to_string(), value.trim_matches('"').to_string());
                    }
                    (name.to_string(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Ok(Self { samples })
    }

    /// The sum of every sample of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|have| have == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The one sample of `name` with exactly no labels, if exported.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && l.is_empty())
            .map(|(_, _, v)| *v)
    }
}

/// Splits `a="x",b="y,z"` at the commas outside quotes.
fn split_labels(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in inner.char_indices() {
        match c {
            '\\' if quoted && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        escaped = false;
    }
    if start < inner.len() {
        parts.push(&inner[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_sums_and_plain_values() {
        let text = "# HELP x y\ntandem_a_total{reason=\"parent-not-on-l1\",k=\"a,b\"} 2\n\
                    tandem_a_total{reason=\"other\"} 3\ntandem_depth 1\n";
        let metrics = Metrics::parse(text).unwrap();
        assert_eq!(metrics.sum("tandem_a_total", &[]), 5.0);
        assert_eq!(
            metrics.sum("tandem_a_total", &[("reason", "parent-not-on-l1")]),
            2.0
        );
        assert_eq!(metrics.sum("tandem_a_total", &[("k", "a,b")]), 2.0);
        assert_eq!(metrics.value("tandem_depth"), Some(1.0));
        assert_eq!(metrics.value("tandem_missing"), None);
        assert!(Metrics::parse("garbage").is_err());
    }
}
