//! Integration-tier harness: real PostgreSQL clusters driven from Rust.
//!
//! A [`Cluster`] is a throw-away data directory with its own port, run by a non-root user
//! (Postgres refuses root) with EpiphanyDB's libraries preloaded. Tests talk to it over the
//! wire protocol with the `postgres` crate and run the server's own tools (pg_ctl,
//! pg_dump, pg_restore) as a user would. scripts/test sets the environment:
//! `EPIPHANY_PG_BINDIR`, `EPIPHANY_TEST_DIR`, `EPIPHANY_PG_USER`, `EPIPHANY_PRELOAD`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use postgres::{Client, NoTls};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tier through `scripts/test integration`")
    })
}

/// How to stop a server, as `pg_ctl stop -m`.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// Clean shutdown with a checkpoint.
    Fast,
    /// No checkpoint: the next start runs crash recovery.
    Immediate,
}

pub struct Cluster {
    pub name: String,
    pub data: PathBuf,
    pub port: u16,
    bindir: PathBuf,
    user: String,
}

impl Cluster {
    /// Creates (replacing any leftover of the same name) and starts a cluster.
    pub fn start_new(name: &str) -> Cluster {
        let root = PathBuf::from(env("EPIPHANY_TEST_DIR"));
        let cluster = Cluster {
            name: name.to_string(),
            data: root.join(name),
            port: free_port(),
            bindir: PathBuf::from(env("EPIPHANY_PG_BINDIR")),
            user: env("EPIPHANY_PG_USER"),
        };
        cluster
            .as_server_user("mkdir", &["-p", root.to_str().unwrap()])
            .ok();
        let _ = cluster.pg_ctl(&["stop", "-m", "immediate"]);
        if cluster.data.exists() {
            std::fs::remove_dir_all(&cluster.data).expect("remove old data directory");
        }
        cluster.run_ok(cluster.server_tool(
            "initdb",
            &[
                "-D",
                cluster.data_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        ));
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = ''\n\
             shared_preload_libraries = '{}'\nfsync = off\n",
            cluster.port,
            env("EPIPHANY_PRELOAD")
        );
        let conf_path = cluster.data.join("postgresql.conf");
        cluster.run_ok(cluster.as_server_user_cmd(
            "sh",
            &[
                "-c",
                &format!("printf '%s' \"$0\" >> '{}'", conf_path.display()),
                &conf,
            ],
        ));
        cluster.start();
        cluster
    }

    /// A streaming standby of `primary`, made with `pg_basebackup -R`, started.
    pub fn start_standby(primary: &Cluster, name: &str) -> Cluster {
        let root = PathBuf::from(env("EPIPHANY_TEST_DIR"));
        let standby = Cluster {
            name: name.to_string(),
            data: root.join(name),
            port: free_port(),
            bindir: primary.bindir.clone(),
            user: primary.user.clone(),
        };
        let _ = standby.pg_ctl(&["stop", "-m", "immediate"]);
        if standby.data.exists() {
            std::fs::remove_dir_all(&standby.data).expect("remove old data directory");
        }
        let port = primary.port.to_string();
        standby.run_ok(standby.server_tool(
            "pg_basebackup",
            &[
                "-D",
                standby.data_str(),
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        ));
        let conf_path = standby.data.join("postgresql.conf");
        standby.run_ok(standby.as_server_user_cmd(
            "sh",
            &[
                "-c",
                &format!("printf '%s' \"$0\" >> '{}'", conf_path.display()),
                &format!("port = {}\nhot_standby = on\n", standby.port),
            ],
        ));
        standby.start();
        standby
    }

    /// Waits until this standby has replayed everything `primary` has written so far.
    pub fn wait_for_replay(&self, primary: &Cluster) {
        let target: String = primary
            .connect("postgres")
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .unwrap()
            .get(0);
        let mut c = self.connect_when_ready("postgres");
        let caught_up = eventually(Duration::from_secs(60), || {
            c.query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&target],
            )
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
        });
        assert!(caught_up, "standby did not replay up to {target}");
    }

    fn data_str(&self) -> &str {
        self.data.to_str().expect("utf-8 path")
    }

    pub fn start(&self) {
        let log = self.data.join("server.log");
        self.run_ok(self.server_tool(
            "pg_ctl",
            &[
                "-D",
                self.data_str(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "120",
                "start",
            ],
        ));
    }

    pub fn stop(&self, how: Stop) {
        let mode = match how {
            Stop::Fast => "fast",
            Stop::Immediate => "immediate",
        };
        self.run_ok(self.server_tool("pg_ctl", &["-D", self.data_str(), "-w", "-m", mode, "stop"]));
    }

    /// `kill -9` of the postmaster and every process it started, as an OOM killer or a
    /// power cut would leave them; the next [`Cluster::start`] runs crash recovery.
    pub fn kill9(&self) {
        let pid_file =
            std::fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid");
        let postmaster: u32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut victims = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": the comm may hold spaces, so split after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                victims.push(pid);
            }
        }
        for pid in &victims {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
        }
        // Gone, or a zombie nobody has reaped yet (it holds no memory or files).
        let gone = eventually(Duration::from_secs(30), || {
            victims.iter().all(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_none_or(|state| state == "Z")
            })
        });
        assert!(gone, "server processes survived kill -9");
        // A dead postmaster that nobody reaped still answers kill(pid, 0), and the next
        // postmaster would take it for a live one: remove its lock file, as an operator
        // does once the old server is known to be dead.
        std::fs::remove_file(self.data.join("postmaster.pid")).expect("remove postmaster.pid");
    }

    pub fn restart(&self, how: Stop) {
        self.stop(how);
        self.start();
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-D", self.data_str()];
        all.extend_from_slice(args);
        self.server_tool("pg_ctl", &all)
            .output()
            .expect("run pg_ctl")
    }

    /// A new session to `db`.
    pub fn connect(&self, db: &str) -> Client {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} connect_timeout=10",
            self.port
        );
        Client::connect(&conn, NoTls)
            .unwrap_or_else(|e| panic!("connect to {db} on {}: {e}", self.port))
    }

    /// Connects, retrying while the server finishes starting up or recovering.
    pub fn connect_when_ready(&self, db: &str) -> Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let conn = format!(
                "host=127.0.0.1 port={} user=postgres dbname={db}",
                self.port
            );
            match Client::connect(&conn, NoTls) {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("server never became ready: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Creates database `db` with the whole suite installed.
    pub fn create_db_with_suite(&self, db: &str) -> Client {
        self.connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        let mut client = self.connect(db);
        client
            .batch_execute(
                "SET client_min_messages = warning; CREATE EXTENSION epiphany_unified_api CASCADE",
            )
            .unwrap();
        client
    }

    /// A client tool (pg_dump, pg_restore, psql) pointed at this server; clients may run as
    /// any user.
    pub fn client_tool(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(tool));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        cmd
    }

    /// A server tool (initdb, pg_ctl) run as the server user.
    fn server_tool(&self, tool: &str, args: &[&str]) -> Command {
        let path = self.bindir.join(tool);
        self.as_server_user_cmd(path.to_str().unwrap(), args)
    }

    fn as_server_user_cmd(&self, program: &str, args: &[&str]) -> Command {
        if current_user() == self.user {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        } else {
            let mut cmd = Command::new("sudo");
            cmd.args(["-u", &self.user, "-H", "--", program]).args(args);
            cmd
        }
    }

    fn as_server_user(&self, program: &str, args: &[&str]) -> Result<Output, std::io::Error> {
        self.as_server_user_cmd(program, args).output()
    }

    pub fn run_ok(&self, mut cmd: Command) -> Output {
        let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
        if !out.status.success() {
            panic!(
                "{cmd:?} failed ({}):\n{}{}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
        }
        out
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `pg_dump -Fc source | pg_restore -d target` (target created empty first), as a
    /// user moves a database.
    pub fn dump_and_restore(&self, source: &str, target: &str) {
        self.connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {target}"))
            .unwrap();
        let mut dump = self
            .client_tool("pg_dump")
            .args(["-Fc", source])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut pg_restore = self.client_tool("pg_restore");
        pg_restore
            .args(["--exit-on-error", "-d", target])
            .stdin(dump.stdout.take().unwrap());
        self.run_ok(pg_restore);
        assert!(dump.wait().unwrap().success(), "pg_dump failed");
    }

    /// `pg_config --sharedir` of the server under test.
    pub fn sharedir(&self) -> PathBuf {
        let out = self.run_ok({
            let mut c = Command::new(self.bindir.join("pg_config"));
            c.arg("--sharedir");
            c
        });
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
    }
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `probe` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    probe()
}
