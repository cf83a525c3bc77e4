//! Property tests of `check_http_backlog`'s parsers (issue 12): /proc/net/tcp{,6},
//! /proc/net/netstat, `sock_diag` replies and `--expect-status` never panic; what parses is
//! what was written; status sets print back to themselves.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use clap::Parser;
use proptest::prelude::*;

use check_http_backlog::procnet::{parse_tcp, TcpExt};
use check_http_backlog::sock_diag::{parse_replies, Replies};
use check_http_backlog::Args;

const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rows as the kernel writes them come back with their address, port and queue;
    /// anything else never panics.
    #[test]
    fn proc_net_tcp_rows(
        rows in proptest::collection::vec((any::<u32>(), any::<u16>(), 0u32..100_000, any::<u32>()), 0..8),
        junk in ".{0,200}",
    ) {
        let mut text = HEADER.to_string();
        for (i, (addr, port, rx, inode)) in rows.iter().enumerate() {
            let _ = writeln!(
                text,
                "{i:4}: {addr:08X}:{port:04X} 00000000:0000 0A 00000000:{rx:08X} 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0"
            );
        }
        let parsed = parse_tcp(&text, 0x0A).unwrap();
        prop_assert_eq!(parsed.len(), rows.len());
        for (row, (_, port, rx, inode)) in parsed.iter().zip(&rows) {
            prop_assert_eq!((row.port, u64::from(row.rx_queue), row.inode), (*port, u64::from(*rx), u64::from(*inode)));
        }
        let _ = parse_tcp(&junk, 0x0A);
        let _ = parse_tcp(&format!("{HEADER}{junk}"), 0x0A);
    }

    #[test]
    fn netstat_tcpext(
        counters in proptest::collection::btree_map("[A-Z][A-Za-z]{1,12}", any::<u64>(), 1..10),
        junk in ".{0,120}",
    ) {
        let names: Vec<&String> = counters.keys().collect();
        let values: Vec<String> = counters.values().map(u64::to_string).collect();
        let text = format!(
            "IpExt: InOctets\nIpExt: 5\nTcpExt: {}\nTcpExt: {}\n",
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
            values.join(" ")
        );
        let t = TcpExt::parse(&text).unwrap();
        for (name, value) in &counters {
            prop_assert_eq!(t.get(name), Some(*value));
        }
        let _ = TcpExt::parse(&junk);
        let _ = TcpExt::parse(&format!("TcpExt: a b\nTcpExt: {junk}\n"));
    }

    /// Whatever a netlink socket returns: an error or replies, never a panic.
    #[test]
    fn sock_diag_replies_never_panic(
        buf in proptest::collection::vec(any::<u8>(), 0..400),
        seq in any::<u32>(),
    ) {
        let mut out = Replies::default();
        let _ = parse_replies(&buf, seq, &mut out);
        // Netlink headers with plausible lengths and types around the random payload.
        let mut framed = Vec::new();
        for chunk in buf.chunks(40) {
            let len = u32::try_from(16 + chunk.len()).unwrap();
            framed.extend_from_slice(&len.to_ne_bytes());
            framed.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
            framed.extend_from_slice(&2u16.to_ne_bytes());
            framed.extend_from_slice(&seq.to_ne_bytes());
            framed.extend_from_slice(&0u32.to_ne_bytes());
            framed.extend_from_slice(chunk);
        }
        let mut out = Replies::default();
        let _ = parse_replies(&framed, seq, &mut out);
    }

    #[test]
    fn status_sets_print_back(text in "([1-5][0-9]{2}(-[1-5][0-9]{2})?,){0,3}[1-5][0-9]{2}(-[1-5][0-9]{2})?|.{0,16}") {
        if let Ok(a) = Args::try_parse_from(["x", "--port", "1", "--expect-status", &text]) {
            let printed = a.expect_status.to_string();
            let b = Args::try_parse_from(["x", "--port", "1", "--expect-status", &printed]).unwrap();
            prop_assert_eq!(b.expect_status.to_string(), printed);
            for code in 100..600u16 {
                prop_assert_eq!(a.expect_status.contains(code), b.expect_status.contains(code));
            }
        }
    }
}
