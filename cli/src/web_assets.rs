//! The browser client's files (web/dist), built into the program so that
//! the web port serves exactly these four and nothing from the disk.

use std::io::Write;
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;
use lantalk_core::web::{content_type, WebAsset, WebConfig};

const FILES: [(&str, &[u8]); 4] = [
    ("/index.html", include_bytes!("../../web/dist/index.html")),
    ("/app.js", include_bytes!("../../web/dist/app.js")),
    ("/app.css", include_bytes!("../../web/dist/app.css")),
    (
        "/lantalk_web.wasm",
        include_bytes!("../../web/dist/lantalk_web.wasm"),
    ),
];

/// The assets, each with its gzipped form when that is smaller (done once,
/// at start: the wasm compresses to about a third).
pub fn config() -> WebConfig {
    let assets = FILES
        .iter()
        .map(|&(path, body)| WebAsset {
            path: path.to_string(),
            content_type: content_type(path),
            body: Arc::from(body),
            gzip: gzip(body).filter(|g| g.len() < body.len()).map(Arc::from),
        })
        .collect();
    WebConfig { assets }
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_file_is_served_and_its_gzip_is_the_same_file() {
        let config = config();
        for (path, body) in FILES {
            let asset = config.asset(path).expect("served");
            assert_eq!(&*asset.body, body);
            if let Some(gz) = &asset.gzip {
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, body);
            }
        }
        assert!(config.asset("/").is_some_and(WebAsset::is_html));
    }
}
