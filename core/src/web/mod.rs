//! The browser's way in: the page over HTTP and the chat over a WebSocket,
//! on a port of its own (issue #17).
//!
//! Pure like the rest of the core: [`http`] parses a request head and
//! builds responses, [`ws`] is the RFC 6455 frame codec. The server's use
//! of them (a web connection's phases, deadlines, wrapping what it sends)
//! is `server/web.rs`. The assets are values handed in by the application
//! ([`WebConfig`]): nothing here reads a file, so no request can reach one.

pub mod http;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

/// Where a browser opens its WebSocket (the chat and file connections).
pub const WS_PATH: &str = "/ws";

/// How long a web connection may take to send its request head: a client
/// that trickles bytes (slowloris) is closed, not waited for.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the web port serves besides the WebSocket.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    pub assets: Vec<WebAsset>,
}

impl WebConfig {
    /// The asset served at `path` exactly (`/` is `/index.html`).
    pub fn asset(&self, path: &str) -> Option<&WebAsset> {
        let path = if path == "/" { "/index.html" } else { path };
        self.assets.iter().find(|a| a.path == path)
    }
}

/// One file of the browser client, held in memory.
#[derive(Clone, Debug)]
pub struct WebAsset {
    /// Its URL path, e.g. `/app.js`.
    pub path: String,
    pub content_type: &'static str,
    pub body: Arc<[u8]>,
    /// The same body gzipped, sent to browsers that accept it.
    pub gzip: Option<Arc<[u8]>>,
}

impl WebAsset {
    /// Whether it is the page (it gets the Content-Security-Policy).
    pub fn is_html(&self) -> bool {
        self.content_type.starts_with("text/html")
    }
}

/// The content type for a file name, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_page_and_paths_match_exactly() {
        let page = WebAsset {
            path: "/index.html".into(),
            content_type: content_type("index.html"),
            body: Arc::from(&b"<p>"[..]),
            gzip: None,
        };
        let config = WebConfig { assets: vec![page] };
        assert!(config.asset("/").is_some_and(WebAsset::is_html));
        assert!(config.asset("/index.html").is_some());
        assert!(config.asset("/INDEX.html").is_none());
        assert!(config.asset("/index.html/").is_none());
        assert!(config.asset("index.html").is_none());
        assert_eq!(content_type("x.wasm"), "application/wasm");
    }
}
