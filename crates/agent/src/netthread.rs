//! A thread of its own for a site's network parts (middlebox, proxy): a current-thread tokio
//! runtime apart from the agents', so a chunk they forward does not wait behind agents' tasks.

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Starts a thread named `name` running a runtime until the returned sender is used or dropped;
/// returns the runtime's handle (enter it to spawn listeners there).
pub(crate) fn own_thread(name: &str) -> std::io::Result<(Handle, oneshot::Sender<()>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let (done, ended) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            rt.block_on(async {
                let _ = ended.await;
            })
        })?;
    Ok((handle, done))
}
