//! Hand-written `wasm-bindgen` imports of the browser's `WebTransport` (web-sys has it only behind `--cfg=web_sys_unstable_apis`, which would need RUSTFLAGS for the whole build): just the members the client uses.

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, Response, WritableStream};

#[wasm_bindgen]
extern "C" {
    /// A `WebTransport` session (<https://w3c.github.io/webtransport/#webtransport>).
    #[derive(Debug, Clone)]
    #[wasm_bindgen(extends = Object)]
    pub(crate) type WebTransport;

    /// `new WebTransport(url, options)`; throws on a bad URL or options.
    #[wasm_bindgen(constructor, catch)]
    pub(crate) fn new(url: &str, options: &Object) -> Result<WebTransport, JsValue>;

    /// Resolves once the session is established.
    #[wasm_bindgen(method, getter)]
    pub(crate) fn ready(this: &WebTransport) -> Promise;

    /// Resolves with `{closeCode, reason}` when the session is closed
    /// cleanly, rejects when it fails.
    #[wasm_bindgen(method, getter)]
    pub(crate) fn closed(this: &WebTransport) -> Promise;

    /// Opens a bidirectional stream: a promise of `{readable, writable}`.
    #[wasm_bindgen(method, js_name = createBidirectionalStream)]
    pub(crate) fn create_bidirectional_stream(this: &WebTransport) -> Promise;

    /// The unidirectional streams the server opens, as a stream of streams.
    #[wasm_bindgen(method, getter, js_name = incomingUnidirectionalStreams)]
    pub(crate) fn incoming_unidirectional_streams(this: &WebTransport) -> ReadableStream;

    /// The session's datagrams.
    #[wasm_bindgen(method, getter)]
    pub(crate) fn datagrams(this: &WebTransport) -> DatagramDuplexStream;

    /// `close({closeCode, reason})`.
    #[wasm_bindgen(method, catch)]
    pub(crate) fn close(this: &WebTransport, info: &Object) -> Result<(), JsValue>;

    /// A `WebTransportBidirectionalStream`.
    #[derive(Debug, Clone)]
    #[wasm_bindgen(extends = Object)]
    pub(crate) type BidirectionalStream;

    /// Its receiving half.
    #[wasm_bindgen(method, getter)]
    pub(crate) fn readable(this: &BidirectionalStream) -> ReadableStream;

    /// Its sending half.
    #[wasm_bindgen(method, getter)]
    pub(crate) fn writable(this: &BidirectionalStream) -> WritableStream;

    /// A `WebTransportDatagramDuplexStream`.
    #[derive(Debug, Clone)]
    #[wasm_bindgen(extends = Object)]
    pub(crate) type DatagramDuplexStream;

    /// Incoming datagrams (chunks are `Uint8Array`s).
    #[wasm_bindgen(method, getter)]
    pub(crate) fn readable(this: &DatagramDuplexStream) -> ReadableStream;

    /// Outgoing datagrams.
    #[wasm_bindgen(method, getter)]
    pub(crate) fn writable(this: &DatagramDuplexStream) -> WritableStream;

    /// The largest datagram the session takes now.
    #[wasm_bindgen(method, getter, js_name = maxDatagramSize)]
    pub(crate) fn max_datagram_size(this: &DatagramDuplexStream) -> f64;
}

/// Sets `key` on a fresh object (`Reflect.set` fails only on frozen objects
/// or throwing setters, which a new plain object has not).
fn set(o: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(key), value);
}

/// The constructor's options: `{ serverCertificateHashes: [{ algorithm: "sha-256", value }] }`
/// (nothing when no hash is pinned: the browser's roots apply).
pub(crate) fn options(hashes: &[[u8; 32]]) -> Object {
    let options = Object::new();
    if !hashes.is_empty() {
        let list = Array::new();
        for hash in hashes {
            let entry = Object::new();
            set(&entry, "algorithm", &JsValue::from_str("sha-256"));
            set(&entry, "value", &Uint8Array::from(&hash[..]));
            list.push(&entry);
        }
        set(&options, "serverCertificateHashes", &list);
    }
    options
}

/// `close({closeCode, reason})`'s argument (the reason cut to 512 bytes on a
/// character boundary; the API allows 1024).
pub(crate) fn close_info(code: u32, reason: &str) -> Object {
    let mut end = reason.len().min(512);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let info = Object::new();
    set(&info, "closeCode", &JsValue::from_f64(f64::from(code)));
    set(&info, "reason", &JsValue::from_str(&reason[..end]));
    info
}

/// A JavaScript error's message (`WebTransportError`, `TypeError`, ...), else its debug form.
pub(crate) fn message(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(err) => String::from(err.message()),
        None => e.as_string().unwrap_or_else(|| format!("{e:?}")),
    }
}

/// `(done, value)` of a `ReadableStreamDefaultReader.read()` result.
pub(crate) fn read_result(result: &JsValue) -> (bool, JsValue) {
    let done = Reflect::get(result, &JsValue::from_str("done"))
        .ok()
        .and_then(|d| d.as_bool())
        .unwrap_or(true);
    let value = Reflect::get(result, &JsValue::from_str("value")).unwrap_or(JsValue::UNDEFINED);
    (done, value)
}

/// The hashes served at `url` as `[{"algorithm":"sha-256","value":[…32 bytes…]}]`
/// (`Certificate::hashes_json`); entries of another algorithm are skipped, and an empty list
/// pins nothing.
pub(crate) async fn fetch_hashes(url: &str) -> Result<Vec<[u8; 32]>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| message(&e))?
        .dyn_into()
        .map_err(|_| "fetch did not give a Response".to_owned())?;
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    let json = JsFuture::from(response.json().map_err(|e| message(&e))?)
        .await
        .map_err(|e| format!("not JSON: {}", message(&e)))?;
    let list = json
        .dyn_into::<Array>()
        .map_err(|_| "not a JSON array".to_owned())?;
    let mut hashes = Vec::new();
    for entry in list.iter() {
        let algorithm = Reflect::get(&entry, &JsValue::from_str("algorithm"))
            .ok()
            .and_then(|a| a.as_string());
        if algorithm.as_deref() != Some("sha-256") {
            continue;
        }
        let value = Reflect::get(&entry, &JsValue::from_str("value"))
            .map_err(|_| "an entry without `value`".to_owned())?;
        let bytes = Uint8Array::new(&value).to_vec();
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("a SHA-256 of {} bytes", b.len()))?;
        hashes.push(hash);
    }
    // An empty list: nothing to pin (a certificate from a CA), the browser's roots decide.
    Ok(hashes)
}

/// `(closeCode, reason)` of a `WebTransportCloseInfo`.
pub(crate) fn close_code_and_reason(info: &JsValue) -> (u32, String) {
    let code = Reflect::get(info, &JsValue::from_str("closeCode"))
        .ok()
        .and_then(|c| c.as_f64())
        .unwrap_or(0.0);
    let reason = Reflect::get(info, &JsValue::from_str("reason"))
        .ok()
        .and_then(|r| r.as_string())
        .unwrap_or_default();
    (code as u32, reason)
}
