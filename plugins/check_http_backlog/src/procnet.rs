//! The text files of /proc/net this check reads: `netstat` (`TcpExt` counters, by name) and
//! `tcp`/`tcp6` (the fallback when `sock_diag` is unavailable).
//!
//! /proc/net/tcp cannot give a listener's backlog: for a LISTEN row `rx_queue` is the
//! accept queue (`sk_ack_backlog`) but `tx_queue` stays 0 (docs/contract.md §10.4). And it has no drop
//! counter. So the fallback reports the backlog from `--backlog` or as unknown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `TcpExt` counters from /proc/net/netstat. The column order differs between kernels, so
/// values are looked up by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpExt {
    pairs: Vec<(String, u64)>,
}

impl TcpExt {
    /// Parses the `TcpExt:` header/value line pair. Other sections (`IpExt`, `MPTcpExt`) are
    /// ignored.
    ///
    /// # Errors
    ///
    /// Text that is not `/proc/net/netstat`'s header/value line pairs.
    pub fn parse(text: &str) -> Result<TcpExt, String> {
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Err("no TcpExt header and value lines".into());
        };
        let names: Vec<&str> = names.split_whitespace().skip(1).collect();
        let values: Vec<&str> = values.split_whitespace().skip(1).collect();
        if names.len() != values.len() {
            return Err(format!(
                "TcpExt has {} names but {} values",
                names.len(),
                values.len()
            ));
        }
        let pairs = names
            .iter()
            .zip(&values)
            .map(|(n, v)| {
                v.parse()
                    .map(|v| ((*n).to_string(), v))
                    .map_err(|_| format!("TcpExt {n} value {v:?} is not a number"))
            })
            .collect::<Result<_, _>>()?;
        Ok(TcpExt { pairs })
    }

    /// A counter by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<u64> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// A row of /proc/net/tcp{,6}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
    /// State (0x0A = LISTEN, 0x01 = ESTABLISHED).
    pub state: u8,
    /// Local address.
    pub addr: IpAddr,
    /// Local port.
    pub port: u16,
    /// For a listener: the accept queue.
    pub rx_queue: u32,
    /// Owner uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
}

/// Decodes the kernel's hex address: each 32-bit word is `%08X` of the network-order u32
/// read as a host integer (127.0.0.1 -> `0100007F` on little-endian hosts).
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The rows of one file in state `state` (others are skipped before any decoding).
///
/// # Errors
///
/// A line that does not have the fields of `/proc/net/tcp`.
pub fn parse_tcp(text: &str, state: u8) -> Result<Vec<TcpRow>, String> {
    let want = format!("{state:02X}");
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            return Err(format!(
                "line {}: {} fields, expected 10 or more",
                i + 1,
                f.len()
            ));
        }
        if f[3] != want {
            continue;
        }
        let bad = |what: &str| format!("line {}: bad {what} in {line:?}", i + 1);
        let (addr, port) = f[1].split_once(':').ok_or_else(|| bad("local address"))?;
        let (_tx, rx) = f[4].split_once(':').ok_or_else(|| bad("queues"))?;
        rows.push(TcpRow {
            state,
            addr: parse_addr(addr).ok_or_else(|| bad("address"))?,
            port: u16::from_str_radix(port, 16).map_err(|_| bad("port"))?,
            rx_queue: u32::from_str_radix(rx, 16).map_err(|_| bad("rx_queue"))?,
            uid: f[7].parse().map_err(|_| bad("uid"))?,
            inode: f[9].parse().map_err(|_| bad("inode"))?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpext_by_name() {
        let text = include_str!("../tests/fixtures/proc/net/netstat-linux-6.18.txt");
        let t = TcpExt::parse(text).unwrap();
        assert!(t.get("ListenOverflows").is_some());
        assert!(t.get("ListenDrops").unwrap() >= t.get("ListenOverflows").unwrap());
        assert_eq!(t.get("NoSuchCounter"), None);
        // Another kernel's order: still found by name.
        let swapped = "TcpExt: ListenDrops ListenOverflows\nTcpExt: 9 7\nIpExt: A\nIpExt: 1\n";
        let t = TcpExt::parse(swapped).unwrap();
        assert_eq!(
            (t.get("ListenOverflows"), t.get("ListenDrops")),
            (Some(7), Some(9))
        );
        assert!(TcpExt::parse("IpExt: A\nIpExt: 1\n").is_err());
        assert!(TcpExt::parse("TcpExt: A B\nTcpExt: 1\n").is_err());
        assert!(TcpExt::parse("TcpExt: A\nTcpExt: x\n").is_err());
    }

    #[test]
    fn listen_rows_of_both_families() {
        let v4 = include_str!("../tests/fixtures/proc/net/tcp-listen-linux-6.18.txt");
        let rows = parse_tcp(v4, 0x0A).unwrap();
        let l = rows
            .iter()
            .find(|r| r.addr == IpAddr::V4(Ipv4Addr::LOCALHOST) && r.port == 0x1F90)
            .expect("127.0.0.1:8080 listener in the fixture");
        assert_eq!((l.rx_queue, l.inode), (4, 7_654_321));
        assert!(rows.iter().all(|r| r.state == 0x0A));
        let est = parse_tcp(v4, 0x01).unwrap();
        assert_eq!(est.len(), 1);
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000  1000        0 123 1 0000000000000000 100 0 0 10 0\n";
        let rows = parse_tcp(v6, 0x0A).unwrap();
        assert_eq!(rows[0].addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            (rows[0].port, rows[0].rx_queue, rows[0].uid),
            (8081, 2, 1000)
        );
        assert!(parse_tcp("header\n  0: 0100007F:1F90\n", 0x0A).is_err());
    }
}
