//! Command-line arguments of `browser-server`.

use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "usage: browser-server --port PORT --pages DIR --pkg DIR \
     [--heartbeat-ms MS]   (PORT 0: any free port; MS: the sessions' heartbeat, default 15000)";

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
}

impl Args {
    pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let (mut port, mut pages, mut pkg, mut heartbeat) = (None, None, None, None);
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
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        Ok(Self {
            port: port.ok_or("--port is required")?,
            pages: pages.ok_or("--pages is required")?,
            pkg: pkg.ok_or("--pkg is required")?,
            heartbeat,
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
