//! Which container a process runs in, from its cgroup path alone (no runtime API or socket).
//!
//! Every runtime puts a container's processes in a cgroup named after it; the shapes differ
//! by runtime and by cgroup driver (systemd or cgroupfs), on cgroup v1 and v2 alike:
//!
//! | runtime | cgroup path component(s) |
//! |---|---|
//! | Docker | `docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs) |
//! | containerd / CRI / Kubernetes | `cri-containerd-<id>.scope`, `/kubepods/.../pod<uid>/<id>` |
//! | CRI-O | `crio-<id>.scope` |
//! | Podman | `libpod-<id>.scope`, `/libpod_parent/libpod-<id>` |
//! | LXC | `lxc.payload.NAME` (LXC 4+), `/lxc/NAME` (older) |
//! | systemd-nspawn, libvirt | `machine-NAME.scope` (systemd-escaped) |
//!
//! `<id>` is 64 hex digits. Runtime helpers that sit outside the container
//! (`libpod-conmon-<id>.scope`, `lxc.monitor.NAME`) are not the container.

use std::fmt;

/// The runtimes told apart by their cgroup names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    /// Docker (moby).
    Docker,
    /// containerd's CRI plugin, Kubernetes pods.
    Containerd,
    /// CRI-O.
    CriO,
    /// Podman.
    Podman,
    /// LXC / Incus / LXD.
    Lxc,
    /// systemd-nspawn or another systemd-registered machine.
    Machine,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Lxc => "lxc",
            Runtime::Machine => "machine",
        })
    }
}

/// A container as its cgroup names it: a 64-hex-digit id, or a name (LXC, nspawn).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Container {
    /// The runtime.
    pub runtime: Runtime,
    /// The id (lowercase hex) or name.
    pub key: String,
}

impl Container {
    /// Whether `wanted` (from `--container`) names this container: its name, its full id,
    /// or a prefix of its id of at least [`MIN_ID_PREFIX`] hex digits, as `docker ps` shows.
    #[must_use]
    pub fn is_named(&self, wanted: &str) -> bool {
        if self.key == wanted {
            return true;
        }
        let wanted = wanted.to_ascii_lowercase();
        is_hex_id(&self.key)
            && wanted.len() >= MIN_ID_PREFIX
            && wanted.chars().all(|c| c.is_ascii_hexdigit())
            && self.key.starts_with(&wanted)
    }

    /// The short form for output and perfdata labels: a name as is, an id cut to 12 digits.
    #[must_use]
    pub fn short(&self) -> &str {
        if is_hex_id(&self.key) {
            &self.key[..MIN_ID_PREFIX]
        } else {
            &self.key
        }
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} container {}", self.runtime, self.short())
    }
}

/// The shortest id prefix accepted, the length `docker ps` prints.
pub const MIN_ID_PREFIX: usize = 12;

fn is_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The container named by one cgroup path (the outermost, for nested containers).
#[must_use]
pub fn in_cgroup_path(path: &str) -> Option<Container> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let under_kubepods = |i: usize| parts[..i].iter().any(|p| p.starts_with("kubepods"));
    for (i, part) in parts.iter().enumerate() {
        if let Some(c) = in_component(part) {
            return Some(c);
        }
        let next = parts.get(i + 1).copied();
        let found = match (*part, next) {
            ("docker", Some(id)) if is_hex_id(id) => Some((Runtime::Docker, id)),
            ("lxc" | "lxc.payload", Some(name)) => Some((Runtime::Lxc, name)),
            (id, _) if is_hex_id(id) && under_kubepods(i) => Some((Runtime::Containerd, id)),
            _ => None,
        };
        if let Some((runtime, key)) = found {
            return Some(Container {
                runtime,
                key: key.to_string(),
            });
        }
    }
    None
}

/// A container named by a single path component (`docker-<id>.scope`, `lxc.payload.web`).
fn in_component(part: &str) -> Option<Container> {
    const ID_PREFIXES: [(&str, Runtime); 4] = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("libpod-", Runtime::Podman),
    ];
    let bare = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in ID_PREFIXES {
        if let Some(id) = bare.strip_prefix(prefix).filter(|id| is_hex_id(id)) {
            return Some(Container {
                runtime,
                key: id.to_string(),
            });
        }
    }
    if let Some(name) = part.strip_prefix("lxc.payload.").filter(|n| !n.is_empty()) {
        return Some(Container {
            runtime: Runtime::Lxc,
            key: name.to_string(),
        });
    }
    let name = part.strip_prefix("machine-")?.strip_suffix(".scope")?;
    Some(Container {
        runtime: Runtime::Machine,
        key: unescape_systemd(name),
    })
}

/// Undoes systemd's unit-name escaping (`\x2d` -> `-`).
fn unescape_systemd(name: &str) -> String {
    let mut out = Vec::with_capacity(name.len());
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            if let Some(b) = name
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5a6b7c8d9e0f11223344556677889900aabbccddeeff0011223344556677";

    #[allow(clippy::unnecessary_wraps)] // reads as the expected value in the table
    fn c(runtime: Runtime, key: &str) -> Option<Container> {
        Some(Container {
            runtime,
            key: key.to_string(),
        })
    }

    /// Paths as the runtimes write them into /proc/PID/cgroup (v2 `0::` and v1 lines).
    #[test]
    fn every_runtime_shape() {
        let cases = [
            (format!("/system.slice/docker-{ID}.scope"), c(Runtime::Docker, ID)),
            (format!("/docker/{ID}"), c(Runtime::Docker, ID)),
            (format!("/docker/{ID}/nested/child"), c(Runtime::Docker, ID)),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b.slice/cri-containerd-{ID}.scope"),
                c(Runtime::Containerd, ID),
            ),
            (
                format!("/kubepods/burstable/pod0c7e1a2b-1111-2222-3333-444455556666/{ID}"),
                c(Runtime::Containerd, ID),
            ),
            (format!("/machine.slice/libpod-{ID}.scope/container"), c(Runtime::Podman, ID)),
            (format!("/libpod_parent/libpod-{ID}"), c(Runtime::Podman, ID)),
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
                c(Runtime::Podman, ID),
            ),
            (format!("/system.slice/crio-{ID}.scope"), c(Runtime::CriO, ID)),
            ("/lxc.payload.web01".to_string(), c(Runtime::Lxc, "web01")),
            ("/lxc/web01".to_string(), c(Runtime::Lxc, "web01")),
            ("/machine.slice/machine-web\\x2d01.scope".to_string(), c(Runtime::Machine, "web-01")),
            // Not containers: the runtime's helpers, plain services, a short hex id.
            (format!("/machine.slice/libpod-conmon-{ID}.scope"), None),
            ("/lxc.monitor.web01".to_string(), None),
            ("/system.slice/nginx.service".to_string(), None),
            ("/process_api/76451a2c5e29c5c90b90de2acdee7a8d".to_string(), None),
            ("/".to_string(), None),
        ];
        for (path, want) in cases {
            assert_eq!(in_cgroup_path(&path), want, "{path}");
        }
    }

    #[test]
    fn names_ids_and_prefixes() {
        let docker = Container {
            runtime: Runtime::Docker,
            key: ID.to_string(),
        };
        assert!(docker.is_named(ID));
        assert!(docker.is_named(&ID[..12]));
        assert!(docker.is_named(&ID[..12].to_uppercase()));
        assert!(!docker.is_named(&ID[..11]), "fewer than 12 digits");
        assert!(!docker.is_named("3f4e5a6b7c8e"));
        assert_eq!(docker.short(), &ID[..12]);
        assert_eq!(
            docker.to_string(),
            format!("docker container {}", &ID[..12])
        );
        let lxc = Container {
            runtime: Runtime::Lxc,
            key: "web01".into(),
        };
        assert!(lxc.is_named("web01") && !lxc.is_named("web0"));
        assert_eq!(lxc.short(), "web01");
    }
}
