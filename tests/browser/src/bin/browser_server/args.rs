//! Command-line arguments of `browser-server`.

use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "usage: browser-server --port PORT --pages DIR --pkg DIR \
     [--heartbeat-ms MS] [--tls-dir DIR [--tls-port PORT]] [--wt-port PORT]   (PORT 0: any free \
     port; MS: the sessions' heartbeat, default 15000; DIR: where the self-signed certificates \
     are kept; --wt-port: the WebTransport server's UDP port)";

/// What `browser-server` was asked to do.
#[derive(Debug)]
pub(crate) struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub(crate) port: u16,
    /// The test pages (HTML and JavaScript), served at `/`.
    pub(crate) pages: PathBuf,
    /// The wasm-bindgen output, served at `/pkg/`.
    pub(crate) pkg: PathBuf,
    /// Heartbeat of every session (sent to clients in `Welcome`); `None`: the default.
    pub(crate) heartbeat: Option<Duration>,
    /// Also serve over TLS, with the certificate kept here.
    pub(crate) tls_dir: Option<PathBuf>,
    /// Port of the TLS listener (0: any free one).
    pub(crate) tls_port: u16,
    /// UDP port of the WebTransport server (0: any free one).
    pub(crate) wt_port: u16,
}

impl Args {
    pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let (mut port, mut pages, mut pkg, mut heartbeat) = (None, None, None, None);
        let (mut tls_dir, mut tls_port, mut wt_port) = (None, 0, 0);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--port" => {
                    let p = value
                        .parse()
                        .map_err(|e| format!("--port {value:?} is not a port number: {e}"))?;
                    port = Some(p);
                }
                "--pages" => pages = Some(directory(&flag, value)?),
                "--pkg" => pkg = Some(directory(&flag, value)?),
                "--heartbeat-ms" => {
                    let ms: u64 = value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        format!("--heartbeat-ms {value:?} is not a positive integer")
                    })?;
                    heartbeat = Some(Duration::from_millis(ms));
                }
                "--tls-dir" => tls_dir = Some(PathBuf::from(value)),
                "--tls-port" => {
                    tls_port = value
                        .parse()
                        .map_err(|e| format!("--tls-port {value:?} is not a port number: {e}"))?;
                }
                "--wt-port" => {
                    wt_port = value
                        .parse()
                        .map_err(|e| format!("--wt-port {value:?} is not a port number: {e}"))?;
                }
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        Ok(Self {
            port: port.ok_or("--port is required")?,
            pages: pages.ok_or("--pages is required")?,
            pkg: pkg.ok_or("--pkg is required")?,
            heartbeat,
            tls_dir,
            tls_port,
            wt_port,
        })
    }
}

fn directory(flag: &str, value: String) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(format!("{flag} {} is not a directory", path.display()))
    }
}
