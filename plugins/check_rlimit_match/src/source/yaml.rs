//! The YAML config (`--config FILE [--service NAME]`) as jobs: one per service, its
//! selector, its `expect:`/`at_least:` values and its source toggles. Command-line sources
//! apply to every service as well (the service's own come first).

use std::path::{Path, PathBuf};

use procguard_common::CheckError;

use crate::config::{self, Service, Toggle};
use crate::expectation::{Comparison, Kind};
use crate::plan::{Job, Like, UnitChoice};
use crate::source::cli::Stated;

/// The jobs of the config at `path`, or of its service `only`. `cli` holds the sources given
/// on the command line; `items` the `--item` values.
pub fn jobs(
    path: &Path,
    cli: &Job,
    only: Option<&str>,
    items: &[&'static str],
) -> Result<Vec<Job>, CheckError> {
    let text = procguard_common::files::read_regular_text(
        path,
        procguard_common::files::max::CONFIG,
        procguard_common::files::Follow::Always,
    )?;
    let config = config::parse(path, &text)?;
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let mut jobs = Vec::new();
    for s in config
        .services
        .iter()
        .filter(|s| only.is_none_or(|n| n == s.name))
    {
        let job = job(&file, s, cli);
        if !job.has_source() {
            return Err(CheckError::Config(format!(
                "config {}: service {:?} has no expectation (expect, at_least, limits_conf, systemd, like_pid or like_pidfile)",
                path.display(),
                s.name
            )));
        }
        jobs.push(job.with_items(items));
    }
    if jobs.is_empty() {
        let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        return Err(CheckError::Config(format!(
            "--service {}: not in {} (services: {})",
            only.unwrap_or_default(),
            path.display(),
            names.join(", ")
        )));
    }
    Ok(jobs)
}

/// One service's job (items not yet set).
fn job(file: &str, s: &Service, cli: &Job) -> Job {
    let own = |comparison, key: &str, items: &config::Items| -> Vec<Stated> {
        items
            .specs()
            .into_iter()
            .map(|spec| Stated {
                spec,
                comparison,
                kind: Kind::Config(file.to_string()),
                source: format!("{file} {} {key} {spec}", s.name),
            })
            .collect()
    };
    let cli_part = |comparison| {
        cli.stated
            .iter()
            .filter(move |st: &&Stated| st.comparison == comparison)
            .cloned()
    };
    let stated = own(Comparison::Exact, "expect", &s.expect)
        .into_iter()
        .chain(cli_part(Comparison::Exact))
        .chain(own(Comparison::AtLeast, "at_least", &s.at_least))
        .chain(cli_part(Comparison::AtLeast))
        .collect();
    let limits_conf = match &s.limits_conf {
        Some(Toggle::On) => Some(PathBuf::from("/etc/security")),
        Some(Toggle::Value(p)) => Some(PathBuf::from(p)),
        _ => None,
    };
    let systemd = match &s.systemd {
        Some(Toggle::On) => Some(UnitChoice::from_flag("", s.select.unit.as_ref())),
        Some(Toggle::Value(u)) => Some(UnitChoice::Named(u.clone())),
        _ => None,
    };
    Job {
        service: Some(s.name.clone()),
        selector: s.select.selector(),
        label: s.label.clone().or_else(|| Some(s.name.clone())),
        items: Vec::new(),
        stated,
        limits_conf: limits_conf.or_else(|| cli.limits_conf.clone()),
        systemd: systemd.or_else(|| cli.systemd.clone()),
        like: Like::from_options(s.like_pid, s.like_pidfile.as_ref()).or_else(|| cli.like.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::cli;

    fn cli_job() -> Job {
        Job {
            service: None,
            selector: procguard_common::select::Selector::default(),
            label: None,
            items: Vec::new(),
            stated: cli::stated(
                &["nofile=1:2".parse().unwrap()],
                &["nproc=5".parse().unwrap()],
            ),
            limits_conf: None,
            systemd: None,
            like: Some(Like::Pid(9)),
        }
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn services_become_jobs_with_their_own_sources_first() {
        let (_dir, path) = write(
            "services:\n  - name: web\n    select: {unit: web}\n    expect: {core: 0}\n    at_least: {nofile: 4096}\n    systemd: true\n    limits_conf: /x\n  - name: db\n    select: {name: pg}\n    label: postgres\n    like_pidfile: /run/pg.pid\n",
        );
        let all = jobs(&path, &cli_job(), None, &["stack"]).unwrap();
        let web = &all[0];
        let sources: Vec<&str> = web.stated.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "services.yaml web expect core=0:0",
                "--expect nofile=1:2",
                "services.yaml web at_least nofile=4096:4096",
                "--at-least nproc=5"
            ]
        );
        assert_eq!(web.stated[0].kind, Kind::Config("services.yaml".into()));
        assert_eq!(web.items, ["stack", "core", "nofile", "nproc"]);
        assert_eq!(web.systemd, Some(UnitChoice::Named("web".into())));
        assert_eq!(web.limits_conf, Some(PathBuf::from("/x")));
        assert_eq!(
            web.like,
            Some(Like::Pid(9)),
            "the command line's --like-pid"
        );
        assert_eq!(web.label.as_deref(), Some("web"));
        let db = &all[1];
        assert_eq!(db.like, Some(Like::Pidfile("/run/pg.pid".into())));
        assert_eq!(db.label.as_deref(), Some("postgres"));
        assert_eq!(jobs(&path, &cli_job(), Some("db"), &[]).unwrap().len(), 1);
        let missing = jobs(&path, &cli_job(), Some("nope"), &[]).unwrap_err();
        assert!(
            missing.to_string().ends_with("(services: web, db)"),
            "{missing}"
        );
    }

    #[test]
    fn a_service_without_any_source_is_a_config_error() {
        let (_dir, path) = write("services:\n  - name: bare\n    select: {pid: 1}\n");
        let mut cli = cli_job();
        cli.stated.clear();
        cli.like = None;
        let e = jobs(&path, &cli, None, &[]).unwrap_err().to_string();
        assert!(e.contains("service \"bare\" has no expectation"), "{e}");
    }

    #[test]
    fn the_example_file_as_jobs() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/services.yaml");
        let mut none = cli_job();
        none.stated.clear();
        none.like = None;
        let all = jobs(&path, &none, None, &[]).unwrap();
        let names: Vec<&str> = all.iter().filter_map(|j| j.service.as_deref()).collect();
        assert_eq!(names, ["node_web_app", "nginx", "workers"]);
        let web_app = &all[0];
        assert_eq!(web_app.label.as_deref(), Some("node"));
        assert_eq!(web_app.stated[0].comparison, Comparison::AtLeast);
        assert_eq!(
            web_app.stated[0].source,
            "services.yaml node_web_app at_least nofile=500000:500000"
        );
        assert_eq!(web_app.limits_conf, Some(PathBuf::from("/etc/security")));
        let nginx = &all[1];
        assert_eq!(nginx.items, ["core", "nofile"]);
        assert!(nginx
            .stated
            .iter()
            .all(|s| s.comparison == Comparison::Exact));
        assert_eq!(
            nginx.systemd,
            Some(UnitChoice::Named("nginx.service".into()))
        );
        let workers = &all[2];
        assert_eq!(
            workers.like,
            Some(Like::Pidfile("/run/worker-master.pid".into()))
        );
        assert_eq!(workers.items, ["nofile"]);
    }
}
