//! Provenance and remediation on fake /proc trees, one per supervisor's shape: the files
//! are the kernel's formats (a real `stat` line and `limits` table, environments Monit 5.33
//! and supervisord 4.2.5 really gave their children), with PIDs, names and limits set per
//! case.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use procguard_common::proc::container::Runtime;
use procguard_common::proc::{ProcRoot, Rlimit};
use procguard_common::provenance::{self, Kind, SoftOrigin};
use procguard_common::remediation;
use procguard_common::testing::FakeProc;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc");

fn fixture(name: &str) -> String {
    fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

/// A fake /proc tree with `systemd` as PID 1 (common's one fixture-tree builder).
struct Tree(FakeProc);

/// One process of a [`Tree`].
struct P<'a> {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    session: i32,
    comm: &'a str,
    cmdline: &'a [&'a str],
    nofile: (u64, u64),
    environ: &'a str,
    cgroup: &'a str,
}

impl Default for P<'_> {
    fn default() -> Self {
        P {
            pid: 0,
            ppid: 1,
            pgrp: 0,
            session: 0,
            comm: "sleep",
            cmdline: &[],
            nofile: (1024, 4096),
            environ: "",
            cgroup: "0::/\n",
        }
    }
}

impl Tree {
    fn new() -> Tree {
        let t = Tree(FakeProc::new());
        t.add(&P {
            pid: 1,
            ppid: 0,
            pgrp: 1,
            session: 1,
            comm: "systemd",
            cmdline: &["/sbin/init"],
            nofile: (1024, 524_288),
            ..P::default()
        });
        t
    }

    fn root(&self) -> ProcRoot {
        self.0.root()
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn add(&self, p: &P) {
        let or_own = |v: i32| if v == 0 { p.pid } else { v };
        self.0
            .process(p.pid)
            .ppid(p.ppid)
            .pgrp(or_own(p.pgrp))
            .session(or_own(p.session))
            .comm(p.comm)
            .cmdline(p.cmdline)
            .nofile(p.nofile.0, p.nofile.1)
            .environ(p.environ)
            .cgroup(p.cgroup)
            .write();
    }
}

#[allow(clippy::unnecessary_wraps)] // the shape remediation::fix takes
fn rl(soft: u64, hard: u64) -> Option<Rlimit> {
    Some(Rlimit {
        soft: Some(soft),
        hard: Some(hard),
    })
}

#[test]
fn node_raised_its_soft_limit_under_monit() {
    let t = Tree::new();
    let rc = t.path().join("monitrc");
    fs::write(
        &rc,
        "check process incident-node with pidfile /run/node.pid\n",
    )
    .unwrap();
    let rc_s = rc.display().to_string();
    t.add(&P {
        pid: 812,
        comm: "monit",
        cmdline: &["/usr/bin/monit", "-I", "-c", &rc_s],
        ..P::default()
    });
    t.add(&P {
        pid: 19598,
        ppid: 812,
        comm: "sh",
        cmdline: &["/bin/sh", "-c", "exec node server.js"],
        ..P::default()
    });
    t.add(&P {
        pid: 19600,
        ppid: 19598,
        pgrp: 19598,
        session: 19598,
        comm: "node",
        cmdline: &["node", "server.js"],
        nofile: (4096, 4096),
        environ: "MONIT_SERVICE=incident-node\0MONIT_EVENT=Started\0",
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 19600, "nofile");
    assert_eq!(p.soft, SoftOrigin::RaisedToHard);
    assert_eq!(p.hard_from.as_ref().unwrap().pid, 812);
    assert_eq!(
        p.summary(),
        ", hard limit inherited from monit[812] (nofile 1024:4096); the process raised its soft limit to it"
    );
    assert!(
        p.story().contains("the process raised its own soft limit to its hard limit at start (as Node.js and Go do), so the inherited hard limit 4096 is what binds"),
        "{}",
        p.story()
    );
    let fix = remediation::fix(&p, rl(65536, 4096)).unwrap();
    assert!(
        fix.starts_with(&format!("fix (monit): start program = \"/bin/sh -c 'ulimit -Hn 65536; ...'\" in 'check process incident-node' of {rc_s}")),
        "{fix}"
    );
    assert!(
        fix.contains("the process raises its soft limit to it"),
        "{fix}"
    );
    assert!(
        fix.contains("raising a hard limit needs root or CAP_SYS_RESOURCE"),
        "{fix}"
    );
    assert!(!fix.contains("4096"), "never the value it has: {fix}");
}

#[allow(clippy::too_many_lines)] // one story: found by environment, by pidfile, not at all
/// Monit's start program backgrounded the service and exited: the service is a child of
/// PID 1, its session leader gone; its environment and the live monit's control file say who.
#[test]
fn daemonized_under_monit_names_the_live_monit() {
    let t = Tree::new();
    let rc = t.path().join("monitrc");
    let pidfile = t.path().join("svc.pid");
    fs::write(&pidfile, "26010\n").unwrap();
    fs::write(
        &rc,
        format!(
            "set daemon 1\ncheck process capsvc with pidfile {}\n",
            pidfile.display()
        ),
    )
    .unwrap();
    let other = t.path().join("other-monitrc");
    fs::write(
        &other,
        "check process unrelated with pidfile /nonexistent\n",
    )
    .unwrap();
    let rc_s = rc.display().to_string();
    let other_s = other.display().to_string();
    t.add(&P {
        pid: 700,
        comm: "monit",
        cmdline: &["monit", "-I", "-c", &other_s],
        nofile: (4096, 4096),
        ..P::default()
    });
    t.add(&P {
        pid: 25974,
        comm: "monit",
        cmdline: &["monit", "-I", "-c", &rc_s],
        nofile: (1024, 1024),
        ..P::default()
    });
    let env = fixture("provenance/environ-monit-5.33.txt");
    t.add(&P {
        pid: 26010,
        ppid: 1,
        pgrp: 25978,
        session: 25978,
        nofile: (1024, 1024),
        environ: &env,
        cmdline: &["sleep", "300"],
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 26010, "nofile");
    assert!(p
        .orphaned
        .as_ref()
        .unwrap()
        .contains("session leader 25978 is gone"));
    let s = p.starter.as_ref().unwrap();
    assert_eq!(s.kind, Kind::Monit);
    assert_eq!(
        s.process.as_ref().unwrap().pid,
        25974,
        "the monit whose control file names it"
    );
    assert_eq!(s.service.as_deref(), Some("capsvc"));
    assert_eq!(
        p.summary(),
        ", started by monit[25974] (service 'capsvc', nofile 1024:1024), then reparented"
    );
    let story = p.story();
    assert!(
        story.contains(&format!("monit[25974] started it (service 'capsvc'): MONIT_SERVICE=capsvc, MONIT_EVENT=Started in its environment; {rc_s} has 'check process capsvc' with its pidfile; monit[25974] has nofile 1024:1024, the same: inherited from it")),
        "{story}"
    );
    assert!(story.len() < 400, "within the report's line cap: {story}");
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert!(
        fix.starts_with(&format!("fix (monit): start program = \"/bin/sh -c 'ulimit -Hn 65536; ulimit -Sn 65536; ...'\" in 'check process capsvc' of {rc_s}")),
        "{fix}"
    );
    assert!(fix.len() < 400, "within the report's line cap: {fix}");

    // Without the environment (unknown service), the pidfile in the control file tells.
    fs::write(t.path().join("26010/environ"), "").unwrap();
    let p = provenance::trace(&t.root(), 26010, "nofile");
    let s = p.starter.as_ref().unwrap();
    assert_eq!(s.process.as_ref().unwrap().pid, 25974);
    assert_eq!(s.service.as_deref(), Some("capsvc"));
    assert!(
        p.story().contains(&format!(
            "monit[25974] started it (service 'capsvc'): {rc_s} watches its pidfile {} as 'check process capsvc'",
            pidfile.display()
        )),
        "{}",
        p.story()
    );

    // Nothing names it: said, no guess.
    fs::write(&pidfile, "1\n").unwrap();
    let p = provenance::trace(&t.root(), 26010, "nofile");
    assert!(p.starter.is_none(), "no marks: no guess");
    assert_eq!(p.summary(), ", its starting parent exited");
    assert!(
        p.story()
            .contains("nothing it carries (environment, cgroup) names who started it"),
        "{}",
        p.story()
    );
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert!(
        fix.starts_with("fix: raise the hard limit in whatever starts it"),
        "{fix}"
    );
}

#[test]
fn supervisord_named_by_its_script_and_minfds() {
    let t = Tree::new();
    let conf = t.path().join("supervisord.conf");
    fs::write(
        &conf,
        "[supervisord]\nminfds=1024\n[program:capapp]\ncommand=/bin/sleep 300\n",
    )
    .unwrap();
    let conf_s = conf.display().to_string();
    t.add(&P {
        pid: 5005,
        comm: "supervisord",
        cmdline: &["/usr/bin/python3", "/usr/bin/supervisord", "-c", &conf_s],
        nofile: (1024, 2048),
        cgroup: "0::/system.slice/supervisor.service\n",
        ..P::default()
    });
    let env = fixture("provenance/environ-supervisord-4.2.5.txt");
    t.add(&P {
        pid: 5362,
        ppid: 5005,
        session: 5005,
        nofile: (1024, 2048),
        environ: &env,
        cmdline: &["/bin/sleep", "300"],
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 5362, "nofile");
    assert_eq!(
        p.summary(),
        ", inherited from supervisord[5005] (nofile 1024:2048)"
    );
    let s = p.starter.as_ref().unwrap();
    assert_eq!(s.service.as_deref(), Some("capapp"));
    assert_eq!(s.unit.as_deref(), Some("supervisor.service"));
    // Soft short only: minfds.
    let fix = remediation::fix(&p, rl(2048, 2048)).unwrap();
    assert!(fix.starts_with(&format!("fix (supervisord): minfds=2048 in [supervisord] of {conf_s}, then restart supervisord (its children")), "{fix}");
    assert!(
        !fix.contains("the hard limit where it starts"),
        "soft only: {fix}"
    );
    // Hard short too: the unit.
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert!(fix.contains("minfds=65536"), "{fix}");
    assert!(
        fix.contains("the hard limit where it starts: LimitNOFILE=65536 in supervisor.service"),
        "{fix}"
    );
}

#[test]
fn pm2_daemon_found_by_pm2_home() {
    let t = Tree::new();
    t.add(&P {
        pid: 300,
        comm: "PM2 v5.3.0: God",
        cmdline: &["PM2 v5.3.0: God Daemon (/root/.pm2)"],
        nofile: (1024, 4096),
        ..P::default()
    });
    t.add(&P {
        pid: 301,
        ppid: 300,
        session: 300,
        comm: "node",
        cmdline: &["node", "/srv/app.js"],
        nofile: (4096, 4096),
        environ: "PM2_HOME=/root/.pm2\0pm_id=0\0name=app\0",
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 301, "nofile");
    assert_eq!(p.starter.as_ref().unwrap().kind, Kind::Pm2);
    assert!(p.raised_soft_itself());
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert!(fix.starts_with("fix (pm2): the PM2 daemon "), "{fix}");
    assert!(fix.contains("[300] passes on its own limits, fixed when it started (not by pm2 start): pm2 kill, then 'ulimit -Hn 65536; pm2 resurrect'"), "{fix}");
}

#[test]
fn systemd_unit_from_the_cgroup() {
    let t = Tree::new();
    t.add(&P {
        pid: 400,
        session: 400,
        comm: "app",
        cmdline: &["/usr/bin/app"],
        nofile: (1024, 524_288),
        environ: "INVOCATION_ID=0123456789abcdef0123456789abcdef\0",
        cgroup: "0::/system.slice/app.service\n",
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 400, "nofile");
    assert_eq!(
        p.summary(),
        ", inherited from systemd[1] (nofile 1024:524288)"
    );
    let fix = remediation::fix(&p, rl(65536, 524_288)).unwrap();
    assert_eq!(
        fix,
        "fix (systemd): LimitNOFILE=65536:524288 in app.service ([Service], systemctl edit app.service), then systemctl restart app.service; now: prlimit --pid 400 --nofile=65536:524288"
    );
}

#[test]
fn container_chain_ends_at_the_shim() {
    let t = Tree::new();
    let id = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b";
    let cg = format!("0::/system.slice/docker-{id}.scope\n");
    t.add(&P {
        pid: 900,
        comm: "containerd-shim",
        cmdline: &[
            "/usr/bin/containerd-shim-runc-v2",
            "-namespace",
            "moby",
            "-id",
            id,
        ],
        nofile: (1024, 1_048_576),
        ..P::default()
    });
    t.add(&P {
        pid: 920,
        ppid: 900,
        comm: "nginx",
        cmdline: &["nginx: master process nginx -g daemon off;"],
        nofile: (1024, 1_048_576),
        cgroup: &cg,
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 920, "nofile");
    let s = p.starter.as_ref().unwrap();
    assert_eq!(s.kind, Kind::Container(Some(Runtime::Docker)));
    assert_eq!(
        s.service.as_deref(),
        Some(&id[..12]),
        "the short id, as docker ps shows it"
    );
    let fix = remediation::fix(&p, rl(65536, 1_048_576)).unwrap();
    assert!(
        fix.starts_with("fix (docker): docker run --ulimit nofile=65536:1048576"),
        "{fix}"
    );
    assert!(
        fix.contains("default-ulimits in /etc/docker/daemon.json"),
        "{fix}"
    );
}

#[test]
fn nginx_workers_set_their_own_limit() {
    let t = Tree::new();
    t.add(&P {
        pid: 13255,
        comm: "nginx",
        cmdline: &["nginx: master process /usr/sbin/nginx"],
        nofile: (1024, 524_288),
        ..P::default()
    });
    t.add(&P {
        pid: 13256,
        ppid: 13255,
        session: 13255,
        comm: "nginx",
        cmdline: &["nginx: worker process"],
        nofile: (3000, 3000),
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 13256, "nofile");
    assert_eq!(
        p.summary(),
        ", set by the process itself (worker_rlimit_nofile)"
    );
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert!(
        fix.starts_with("fix (config): set 'worker_rlimit_nofile 65536;' in nginx.conf"),
        "{fix}"
    );
}

#[test]
fn runit_soft_only_uses_chpst() {
    let t = Tree::new();
    t.add(&P {
        pid: 50,
        comm: "runsv",
        cmdline: &["runsv", "web"],
        nofile: (1024, 65536),
        ..P::default()
    });
    t.add(&P {
        pid: 51,
        ppid: 50,
        comm: "web",
        cmdline: &["/srv/web"],
        nofile: (1024, 65536),
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 51, "nofile");
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert_eq!(
        fix,
        "fix (runit): 'chpst -o 65536' before exec in the run script of web (sets the soft limit only); now: prlimit --pid 51 --nofile=65536:65536"
    );
    let fix = remediation::fix(&p, rl(100_000, 100_000)).unwrap();
    assert!(
        fix.starts_with("fix (runit): 'ulimit -Hn 100000; ulimit -Sn 100000' before exec"),
        "{fix}"
    );
}

#[test]
fn started_by_hand_from_a_login_session() {
    let t = Tree::new();
    t.add(&P {
        pid: 60,
        ppid: 1,
        pgrp: 58,
        session: 58,
        comm: "app",
        cmdline: &["./app"],
        environ: "SSH_CONNECTION=10.0.0.5 51234 10.0.0.9 22\0SUDO_USER=alice\0",
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 60, "nofile");
    assert_eq!(p.starter.as_ref().unwrap().kind, Kind::Login);
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert!(
        fix.starts_with("fix (login session): it was started by hand from a login session"),
        "{fix}"
    );
}

#[test]
fn the_same_advice_whatever_the_expectation_says_about_the_hard_limit() {
    let t = Tree::new();
    t.add(&P {
        pid: 812,
        comm: "monit",
        cmdline: &["/usr/bin/monit", "-I", "-c", "/nonexistent/monitrc"],
        ..P::default()
    });
    t.add(&P {
        pid: 900,
        ppid: 812,
        comm: "app",
        cmdline: &["/srv/app"],
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 900, "nofile");
    // A hard-only shortfall: the hard limit rises, the soft one is left alone, never lowered.
    let fix = remediation::fix(&p, rl(1024, 8192)).unwrap();
    assert!(fix.contains("'ulimit -Hn 8192; ...'"), "{fix}");
    assert!(!fix.contains("ulimit -n"), "{fix}");
    assert!(
        fix.ends_with("now: prlimit --pid 900 --nofile=1024:8192"),
        "{fix}"
    );
    // Nothing to raise: no fix.
    assert_eq!(remediation::fix(&p, rl(1024, 4096)), None);
}

/// Monit runs under systemd; the daemonized service stays in monit.service's cgroup. With
/// no environment to read, the cgroup names Monit (not systemd) and the running monit's
/// control file, which watches the service's pidfile, names the service.
#[test]
fn daemonized_under_monit_in_its_unit_without_environment() {
    let t = Tree::new();
    let pidfile = t.path().join("web.pid");
    fs::write(&pidfile, "700\n").unwrap();
    let rc = t.path().join("monitrc");
    fs::write(
        &rc,
        format!("check process web with pidfile {}\n", pidfile.display()),
    )
    .unwrap();
    let rc_s = rc.display().to_string();
    let cg = "0::/system.slice/monit.service\n";
    t.add(&P {
        pid: 600,
        comm: "monit",
        cmdline: &["/usr/bin/monit", "-c", &rc_s],
        cgroup: cg,
        ..P::default()
    });
    t.add(&P {
        pid: 700,
        pgrp: 650,
        session: 650,
        comm: "web",
        cmdline: &["/srv/web"],
        cgroup: cg,
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 700, "nofile");
    let s = p.starter.as_ref().unwrap();
    assert_eq!(s.kind, Kind::Monit);
    assert_eq!(s.process.as_ref().unwrap().pid, 600);
    assert_eq!(s.service.as_deref(), Some("web"));
    assert_eq!(s.unit.as_deref(), Some("monit.service"));
    let fix = remediation::fix(&p, rl(65536, 65536)).unwrap();
    assert!(
        fix.contains("or raise Monit's own limit (LimitNOFILE=65536 in monit.service)"),
        "{fix}"
    );
}

#[test]
fn s6_soft_only_uses_s6_softlimit() {
    let t = Tree::new();
    t.add(&P {
        pid: 80,
        comm: "s6-supervise",
        cmdline: &["s6-supervise", "api"],
        nofile: (1024, 65536),
        ..P::default()
    });
    t.add(&P {
        pid: 81,
        ppid: 80,
        comm: "api",
        cmdline: &["/srv/api"],
        nofile: (1024, 65536),
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 81, "nofile");
    let fix = remediation::fix(&p, rl(8192, 65536)).unwrap();
    assert_eq!(
        fix,
        "fix (s6): 's6-softlimit -o 8192' before exec in the run script of api (sets the soft limit only); now: prlimit --pid 81 --nofile=8192:65536"
    );
}

/// A job cron started daemonized itself; its cgroup is cron's unit.
#[test]
fn a_cron_job_that_daemonized() {
    let t = Tree::new();
    t.add(&P {
        pid: 90,
        pgrp: 88,
        session: 88,
        comm: "report",
        cmdline: &["/usr/local/bin/report"],
        cgroup: "0::/system.slice/cron.service\n",
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 90, "nofile");
    assert_eq!(p.starter.as_ref().unwrap().kind, Kind::Cron);
    let fix = remediation::fix(&p, rl(4096, 4096)).unwrap();
    assert!(
        fix.starts_with(
            "fix (cron): jobs get cron's limits: start the job's command with 'ulimit -Sn 4096;'"
        ),
        "{fix}"
    );
}

/// A PM2 app whose parent is gone: the PM2 daemon of its `PM2_HOME` is found.
#[test]
fn pm2_app_reparented() {
    let t = Tree::new();
    t.add(&P {
        pid: 300,
        comm: "PM2 v5.3.0: God",
        cmdline: &["PM2 v5.3.0: God Daemon (/home/app/.pm2)"],
        nofile: (1024, 4096),
        ..P::default()
    });
    t.add(&P {
        pid: 310,
        pgrp: 305,
        session: 305,
        comm: "node",
        cmdline: &["node", "/srv/app.js"],
        nofile: (1024, 4096),
        environ: "PM2_HOME=/home/app/.pm2\0pm_id=3\0name=app\0",
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 310, "nofile");
    let s = p.starter.as_ref().unwrap();
    assert_eq!(s.kind, Kind::Pm2);
    assert_eq!(s.process.as_ref().unwrap().pid, 300);
    assert_eq!(s.service.as_deref(), Some("app"));
    assert!(p.summary().starts_with(", started by "), "{}", p.summary());
}

/// A pre-fork worker that lowered its own soft limit (32 under a master with 20000:20000):
/// the fix goes where the soft value is set, never into the starter's script, where the
/// worker would lower it again; without a target only the soft limit is to rise.
#[test]
fn a_soft_limit_the_process_set_itself_is_raised_where_it_is_set() {
    let t = Tree::new();
    t.add(&P {
        pid: 700,
        comm: "bash",
        cmdline: &["/bin/bash", "start.sh"],
        nofile: (20000, 20000),
        ..P::default()
    });
    t.add(&P {
        pid: 701,
        ppid: 700,
        comm: "prefork",
        cmdline: &["/usr/sbin/prefork"],
        nofile: (20000, 20000),
        ..P::default()
    });
    t.add(&P {
        pid: 702,
        ppid: 701,
        pgrp: 701,
        comm: "prefork",
        cmdline: &["/usr/sbin/prefork"],
        nofile: (32, 20000),
        ..P::default()
    });
    let p = provenance::trace(&t.root(), 702, "nofile");
    assert_eq!(p.soft, SoftOrigin::SetHere);
    for (want, sn) in [(rl(1024, 1024), "ulimit -Sn 1024"), (None, "ulimit -Sn N")] {
        let fix = remediation::fix(&p, want).unwrap();
        assert!(
            fix.starts_with(&format!(
                "fix: prefork[702] sets its own soft limit (its parent prefork[701] has 20000:20000): raise it where that is set, in its own configuration or as '{sn}' in its start command, up to the hard 20000 without privilege"
            )),
            "{fix}"
        );
        assert!(!fix.contains("-Hn") && !fix.contains("start.sh"), "{fix}");
    }
}

#[test]
fn one_scan_for_the_live_monit_serves_every_item() {
    // check_rlimit_match traces nofile and nproc of one process: the live monit found for
    // the first item gives its value of the second too.
    let t = Tree::new();
    let rc = t.path().join("monitrc");
    fs::write(&rc, "check process capsvc with pidfile /nonexistent\n").unwrap();
    let rc_s = rc.display().to_string();
    t.add(&P {
        pid: 25974,
        comm: "monit",
        cmdline: &["monit", "-I", "-c", &rc_s],
        nofile: (1024, 1024),
        ..P::default()
    });
    t.add(&P {
        pid: 26010,
        pgrp: 25978,
        session: 25978,
        cmdline: &["sleep", "300"],
        environ: "MONIT_SERVICE=capsvc\0MONIT_EVENT=Started\0",
        ..P::default()
    });
    let root = t.root();
    for item in ["nofile", "nproc"] {
        let p = provenance::trace(&root, 26010, item);
        let monit = p.starter.as_ref().and_then(|s| s.process.as_ref());
        assert_eq!(monit.map(|m| m.pid), Some(25974), "{item}");
        let want = root.process(25974).limits().unwrap().get(item);
        assert_eq!(monit.map(|m| m.limit), want, "{item}");
    }
}
