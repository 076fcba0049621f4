//! systemd's readiness protocol (`Type=notify`, sd_notify(3)): one datagram per state
//! change to the Unix socket named by `$NOTIFY_SOCKET`, which systemd sets for the service.
//! The protocol is a few lines of text over a datagram socket, so it is written here rather
//! than pulled in as a crate. Without `$NOTIFY_SOCKET` (not under systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (`READY=1`, `STOPPING=1`, ... one assignment per line) to systemd, if it
/// is listening. Failures are logged at debug: readiness is a courtesy, not a duty.
pub fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_to(&path, state) {
        tracing::debug!(%error, "sd_notify failed");
    }
}

/// `RELOADING=1` with the monotonic time, as `Type=notify-reload` requires (and
/// `Type=notify` accepts); `READY=1` follows when the reload is done.
pub fn reloading() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000;
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading"
    ));
}

fn send_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): the name after '@'.
        Some(name) => {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = name;
                return Err(std::io::Error::other("abstract sockets are Linux-only"));
            }
        }
        None => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("hopdns-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
