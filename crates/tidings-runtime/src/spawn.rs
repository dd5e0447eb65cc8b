//! Where a client's driver task runs: the current tokio runtime natively (feature `tokio`), the page's event loop in the browser (feature `wasm`).

use std::sync::Arc;

use crate::driver::{Connector, SharedClient};
use crate::error::ClientError;
use crate::transport::MaybeSend;

/// Spawns the driver (`driver::drive`) for `shared` over `connector`.
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
pub(crate) fn spawn_driver<C: Connector + MaybeSend>(
    shared: Arc<SharedClient>,
    connector: C,
) -> Result<(), ClientError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
    handle.spawn(crate::driver::drive(shared, connector));
    Ok(())
}

/// Spawns the driver (`driver::drive`) for `shared` over `connector`.
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
pub(crate) fn spawn_driver<C: Connector + MaybeSend>(
    shared: Arc<SharedClient>,
    connector: C,
) -> Result<(), ClientError> {
    wasm_bindgen_futures::spawn_local(crate::driver::drive(shared, connector));
    Ok(())
}

/// Without a runtime feature for this target there is nowhere to run the driver.
#[cfg(not(any(
    all(feature = "tokio", not(target_arch = "wasm32")),
    all(feature = "wasm", target_arch = "wasm32")
)))]
pub(crate) fn spawn_driver<C: Connector + MaybeSend>(
    shared: Arc<SharedClient>,
    connector: C,
) -> Result<(), ClientError> {
    let _ = (shared, connector);
    Err(ClientError::NoRuntime)
}
