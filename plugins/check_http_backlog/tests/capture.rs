//! Captures the `sock_diag` byte fixtures used by the unit tests of `src/sock_diag.rs`:
//! `cargo test -p check_http_backlog --test capture -- --ignored`. Each `.bin` is the raw
//! reply of one dump; the `.txt` next to it says what the test listener looked like.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // libc's AF_* constants fit a u8

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use check_http_backlog::sock_diag::{self, Query, TCP_LISTEN};

fn listen(addr: &str, backlog: i32) -> TcpListener {
    let l = TcpListener::bind(addr).unwrap();
    // SAFETY: re-listen on our own socket with a smaller backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), backlog) }, 0);
    l
}

fn capture(name: &str, family: i32, l: &TcpListener, expect_queue: u32) {
    let port = l.local_addr().unwrap().port();
    let q = Query {
        family: family as u8,
        states: 1 << TCP_LISTEN,
        meminfo: true,
        port: Some(port),
        legacy_port_filter: false,
    };
    let datagrams = sock_diag::dump_raw(&q).unwrap();
    let bytes: Vec<u8> = datagrams.concat();
    let sockets = sock_diag::dump(&q, 10).unwrap();
    let s = sockets.iter().find(|s| s.port == port).unwrap();
    assert_eq!(s.rqueue, expect_queue);
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", l.as_raw_fd()))
        .unwrap()
        .ino();
    assert_eq!(u64::from(s.inode), inode);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sock_diag");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.bin")), &bytes).unwrap();
    let mut facts = std::fs::File::create(dir.join(format!("{name}.txt"))).unwrap();
    writeln!(
        facts,
        "# captured on Linux {} by tests/capture.rs\nport {port}\nrqueue {}\nwqueue {}\ninode {}\nuid {}\ndrops {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim(),
        s.rqueue,
        s.wqueue,
        s.inode,
        s.uid,
        s.drops.unwrap()
    )
    .unwrap();
}

#[test]
#[ignore = "writes the fixtures; run by hand"]
fn capture_fixtures() {
    let v4 = listen("127.0.0.1:0", 3);
    let addr = v4.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    // The queue is full (4 = backlog 3 + 1): these SYNs are dropped and counted in sk_drops.
    for _ in 0..2 {
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    }
    capture("listen-v4-full", libc::AF_INET, &v4, 4);
    let v6 = listen("[::1]:0", 16);
    let addr6 = v6.local_addr().unwrap();
    let c6: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr6).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    capture("listen-v6", libc::AF_INET6, &v6, 2);
    drop((clients, c6));
}
