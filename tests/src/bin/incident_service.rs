//! A service shaped like the one procguard exists for: an HTTP server on loopback that keeps
//! every connection open (as WebSocket servers do), answers `GET /` with 200, and, when
//! accept() fails with EMFILE, logs it and leaves new connections waiting in the listen
//! queue. Used by the end-to-end test under a real Monit.
//!
//! `incident_service PORT PIDFILE LOGFILE [BACKLOG]`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: incident_service PORT PIDFILE LOGFILE [BACKLOG]");
        std::process::exit(64);
    }
    let port: u16 = args[1].parse().expect("port");
    let backlog: i32 = args.get(4).map_or(64, |b| b.parse().expect("backlog"));
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args[3])
        .expect("log file");
    let listener = listen(port, backlog);
    std::fs::write(&args[2], format!("{}\n", std::process::id())).expect("pidfile");
    let mut emfile_logged = false;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                emfile_logged = false;
                // Small stacks: one thread per held connection, a thousand of them.
                let _ = std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || serve(stream));
            }
            Err(e) => {
                if !emfile_logged {
                    let _ = writeln!(log, "accept: {e}");
                    emfile_logged = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A listener on 127.0.0.1:PORT with an explicit backlog (std always asks for 128).
fn listen(port: u16, backlog: i32) -> TcpListener {
    // SAFETY: plain socket calls on a descriptor this function owns; the address struct is
    // fully initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            4,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2),
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            fd,
            (&raw const addr).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>()).unwrap_or(16),
        );
        assert_eq!(
            rc,
            0,
            "bind 127.0.0.1:{port}: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(
            libc::listen(fd, backlog),
            0,
            "listen: {}",
            std::io::Error::last_os_error()
        );
        TcpListener::from_raw_fd(fd)
    }
}

/// Answers each request with 200 and keeps the connection until the peer closes it.
fn serve(mut stream: TcpStream) {
    let mut buf = [0u8; 2048];
    let mut pending = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            let reply =
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
            if stream.write_all(reply).is_err() {
                return;
            }
        }
    }
}
