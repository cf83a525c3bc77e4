//! Selection on fixture /proc trees ([`FakeProc`]): kernel threads, zombies, label numbering,
//! user-manager units, containers with their PID namespaces. Each case is a shape a real
//! host shows; the files are the kernel's formats with the fields under test replaced.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used)]

use clap::Parser;
use procguard_common::proc::ProcRoot;
use procguard_common::select::{Scan, Selected, Selector};
use procguard_common::testing::FakeProc;
use procguard_common::{Report, Status};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    sel: Selector,
}

fn pick(proc: &FakeProc, args: &[&str]) -> (Vec<Selected>, Report) {
    let sel = Args::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
        .unwrap()
        .sel;
    let mut report = Report::default();
    let found = sel.resolve(&proc.root(), None, &mut report).unwrap();
    (found, report)
}

fn pids(found: &[Selected]) -> Vec<i32> {
    found.iter().map(|s| s.pid).collect()
}

#[test]
fn kernel_threads_are_never_listed_or_selected() {
    let proc = FakeProc::new();
    proc.process(2)
        .comm("kthreadd")
        .ppid(0)
        .kernel_thread()
        .write();
    proc.process(30)
        .comm("kworker/0:1")
        .ppid(2)
        .kernel_thread()
        .write();
    proc.process(40)
        .comm("nginx")
        .cmdline(&["/usr/sbin/nginx"])
        .write();
    assert_eq!(proc.root().pids().unwrap(), vec![40]);
    let (found, report) = pick(&proc, &["--ppid", "2"]);
    assert!(found.is_empty());
    assert_eq!(report.findings()[0].text, "no process matches --ppid 2");
    let (found, _) = pick(&proc, &["--pid", "30"]);
    assert!(found.is_empty(), "--pid of a kernel thread selects nothing");
}

#[test]
fn a_zombie_is_not_running_and_says_so() {
    let proc = FakeProc::new();
    proc.process(50)
        .comm("python3")
        .state('Z')
        .ppid(77)
        .cmdline(&[])
        .write();
    let (found, report) = pick(&proc, &["--pid", "50"]);
    assert!(found.is_empty());
    assert_eq!(report.status(), Status::Critical);
    assert_eq!(
        report.findings()[0].text,
        "not running: pid 50 is a zombie: it exited and its parent (pid 77) has not reaped it"
    );
    let (_, report) = pick(&proc, &["--name", "python3"]);
    assert!(report.findings()[0]
        .text
        .starts_with("not running: every process matching --name python3 is a zombie (pid 50)"));
    // A live process of the same name is selected, the zombie left out.
    proc.process(51)
        .comm("python3")
        .cmdline(&["python3", "-c", "x"])
        .write();
    let (found, report) = pick(&proc, &["--name", "python3"]);
    assert_eq!(pids(&found), vec![51]);
    assert!(report.findings().is_empty());
}

#[test]
fn labels_number_per_name_by_start_time() {
    let proc = FakeProc::new();
    // Start times interleave the two names.
    for (pid, start) in [(10, 5), (11, 7), (12, 9)] {
        let p = proc.process(pid).comm("php-fpm8.2");
        p.cmdline(&["php-fpm: pool www"]).starttime(start).write();
    }
    for (pid, start) in [(20, 6), (21, 8)] {
        let p = proc.process(pid).comm("nginx");
        p.cmdline(&["nginx: worker process"])
            .starttime(start)
            .write();
    }
    let labels = |proc: &FakeProc| -> Vec<(i32, String)> {
        let (found, _) = pick(proc, &["--cmdline", "."]);
        found.into_iter().map(|s| (s.pid, s.label)).collect()
    };
    let before = labels(&proc);
    assert_eq!(
        before,
        [
            (10, "php-fpm8.2_1"),
            (20, "nginx_1"),
            (11, "php-fpm8.2_2"),
            (21, "nginx_2"),
            (12, "php-fpm8.2_3")
        ]
        .map(|(p, l)| (p, l.to_string()))
    );
    // One more process under another name, started first: nobody is renumbered.
    proc.process(5)
        .comm("cron")
        .cmdline(&["/usr/sbin/cron"])
        .starttime(1)
        .write();
    let after = labels(&proc);
    assert_eq!(after[0], (5, "cron".to_string()));
    assert_eq!(after[1..], before[..]);
    // A selector gives one stem for all.
    let (found, _) = pick(&proc, &["--name", "php-fpm*"]);
    let l: Vec<String> = found.into_iter().map(|s| s.label).collect();
    assert_eq!(l, ["php-fpm_1", "php-fpm_2", "php-fpm_3"]);
}

#[test]
fn user_manager_units_need_their_prefix() {
    let proc = FakeProc::new();
    let user = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/nginx.service\n";
    for (pid, cgroup) in [(60, "0::/system.slice/nginx.service\n"), (61, user)] {
        let p = proc
            .process(pid)
            .comm("nginx")
            .cmdline(&["/usr/sbin/nginx"]);
        p.cgroup(cgroup).write();
    }
    let unit = |u: &str| pids(&pick(&proc, &["--unit", u]).0);
    assert_eq!(unit("nginx"), vec![60]);
    assert_eq!(unit("user@1000.service/nginx"), vec![61]);
    assert_eq!(unit("user@1000.service"), vec![61]);
}

#[test]
fn containers_by_short_id_and_a_pidfile_inside_them() {
    let id = "3f4e5a6b7c8d9e0f11223344556677889900aabbccddeeff0011223344556677";
    let other = "77665544332211000000000000000000000000000000000000000000000000ff";
    let v2 = format!("0::/system.slice/docker-{id}.scope\n");
    let v1 = format!("8:pids:/docker/{other}\n0::/\n");
    let proc = FakeProc::new();
    let nginx = |pid: i32, title: &str, inner: i32| {
        let p = proc.process(pid).comm("nginx").cmdline(&[title]);
        p.cgroup(&v2).ns_pids(&[inner]).write();
    };
    nginx(70, "nginx: master process nginx", 1);
    nginx(71, "nginx: worker process", 7);
    let redis = proc
        .process(80)
        .comm("redis-server")
        .cmdline(&["redis-server *:6379"]);
    redis.cgroup(&v1).ns_pids(&[1]).write();
    let (found, _) = pick(&proc, &["--container", &id[..12]]);
    let shown: Vec<(String, String)> = found
        .iter()
        .map(|s| (s.display(), s.label.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            ("nginx[70, pid 1 in container]", "3f4e5a6b7c8d_1"),
            ("nginx[71, pid 7 in container]", "3f4e5a6b7c8d_2")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let (found, _) = pick(&proc, &["--container", &other[..14]]);
    assert_eq!(found[0].display(), "redis-server[80, pid 1 in container]");
    let pidfile = proc.path().join("nginx.pid");
    std::fs::write(&pidfile, "1\n").unwrap();
    let file = pidfile.to_str().unwrap();
    let (found, _) = pick(&proc, &["--container", id, "--pidfile", file]);
    assert_eq!(pids(&found), vec![70]);
    std::fs::write(&pidfile, "9\n").unwrap();
    let (found, report) = pick(&proc, &["--container", id, "--pidfile", file]);
    assert!(found.is_empty());
    assert!(
        report.findings()[0]
            .text
            .contains("names pid 9, which is not running in container"),
        "{report:?}"
    );
    let (found, report) = pick(&proc, &["--container", "0123456789ab"]);
    assert!(found.is_empty());
    assert_eq!(
        report.findings()[0].text,
        "no process matches --container 0123456789ab"
    );
    let (_, report) = pick(&proc, &["--container", "3f4e5a"]);
    assert_eq!(
        report.findings()[0].text,
        "no process matches --container 3f4e5a (an id prefix needs at least 12 hex digits)"
    );
}

#[test]
fn an_ambiguous_id_prefix_is_unknown() {
    let proc = FakeProc::new();
    for (pid, id) in [(90, "aa"), (91, "bb")] {
        let cg = format!(
            "0::/system.slice/docker-0123456789ab{}.scope\n",
            id.repeat(26)
        );
        proc.process(pid)
            .cmdline(&["sleep", "9"])
            .cgroup(&cg)
            .write();
    }
    let sel = Args::try_parse_from(["x", "--container", "0123456789ab"])
        .unwrap()
        .sel;
    let e = sel
        .resolve(&ProcRoot::new(proc.path()), None, &mut Report::default())
        .unwrap_err();
    assert!(e.to_string().contains("names 2 containers"), "{e}");
    let (found, _) = pick(&proc, &["--container", "0123456789abaa"]);
    assert_eq!(found.len(), 1);
}

/// Selectors of one run share one listing of /proc ([`Scan`]): each selects what
/// `resolve` would from it, and a process started after the listing is not in it.
#[test]
fn selectors_of_a_run_share_one_scan() {
    let proc = FakeProc::new();
    proc.process(40)
        .comm("nginx")
        .cmdline(&["/usr/sbin/nginx"])
        .write();
    proc.process(41)
        .comm("php-fpm8.2")
        .cmdline(&["php-fpm: pool www"])
        .write();
    let root = proc.root();
    let sel = |args: &[&str]| {
        Args::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .sel
    };
    let (nginx, fpm) = (sel(&["--name", "nginx"]), sel(&["--name", "php-fpm"]));
    let mut scan = Scan::default();
    let mut report = Report::default();
    let found = nginx
        .resolve_in(&root, &mut scan, None, &mut report)
        .unwrap();
    assert_eq!(pids(&found), [40]);
    proc.process(42)
        .comm("php-fpm8.2")
        .cmdline(&["php-fpm: pool api"])
        .write();
    let found = fpm.resolve_in(&root, &mut scan, None, &mut report).unwrap();
    assert_eq!(pids(&found), [41], "listed once, before 42 started");
    assert!(report.findings().is_empty(), "{report:?}");
    let (found, _) = pick(&proc, &["--name", "php-fpm"]);
    assert_eq!(pids(&found), [41, 42]);
    // --pid reads no listing; the shared one is still there for the next selector.
    let found = sel(&["--pid", "42"])
        .resolve_in(&root, &mut scan, None, &mut report)
        .unwrap();
    assert_eq!(pids(&found), [42]);
}
