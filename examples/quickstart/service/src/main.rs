//! `hello`: the quickstart's service, small enough to read in one go and built from the
//! standard library alone.
//!
//! - `GET /` answers `hello <version>`, `GET /version` the bare version, `GET /health`
//!   `200 ok` while the service is healthy and `503 <why>` while it is not (its
//!   `--fail-health-if` file exists, or, with the `require-region` feature of release
//!   1.1.0, `HELLO_REGION` is not set).
//! - `hello serve --port 18181 --pid-file run/hello.pid [--fail-health-if FILE]` runs
//!   it (the port may also come from `PORT`); the pid file is written once it listens
//!   and removed when it stops.
//! - `hello probe 127.0.0.1:18181 /health [--attempts N]` is the health probe of the
//!   deploy hooks: exit 0 on a `200`, else 1 with what it saw, so that the hosts need
//!   nothing beyond this binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `/` and `/version` report.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => ServeOptions::parse(&args[1..]).and_then(|o| serve(&o)),
        Some("probe") => probe_command(&args[1..]),
        Some("--version") => {
            println!("hello {VERSION}");
            Ok(())
        }
        _ => Err("usage: hello serve --port PORT [--pid-file FILE] [--fail-health-if FILE]\n       hello probe HOST:PORT PATH [--attempts N]".to_string()),
    };
    if let Err(message) = result {
        eprintln!("hello: {message}");
        std::process::exit(1);
    }
}

/// How `hello serve` was asked to run.
#[derive(Debug, PartialEq)]
struct ServeOptions {
    port: u16,
    pid_file: Option<PathBuf>,
    fail_health_if: Option<PathBuf>,
}

impl ServeOptions {
    fn parse(args: &[String]) -> Result<ServeOptions, String> {
        let mut port = std::env::var("PORT").ok();
        let (mut pid_file, mut fail_health_if) = (None, None);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => port = Some(value()?),
                "--pid-file" => pid_file = Some(PathBuf::from(value()?)),
                "--fail-health-if" => fail_health_if = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown option {other}")),
            }
        }
        let port = port.ok_or("no port: pass --port or set PORT")?;
        let port = port
            .parse()
            .map_err(|_| format!("port `{port}` is not a number from 1 to 65535"))?;
        Ok(ServeOptions {
            port,
            pid_file,
            fail_health_if,
        })
    }
}

fn serve(options: &ServeOptions) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", options.port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", options.port))?;
    if let Some(pid_file) = &options.pid_file {
        if let Some(dir) = pid_file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write the pid file {}: {e}", pid_file.display()))?;
    }
    eprintln!("hello {VERSION} listening on 127.0.0.1:{}", options.port);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let fail_health_if = options.fail_health_if.clone();
        std::thread::spawn(move || {
            let _ = answer(stream, fail_health_if.as_deref());
        });
    }
    Ok(())
}

/// Read one request and answer it; the connection closes after the answer.
fn answer(mut stream: TcpStream, fail_health_if: Option<&Path>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers: nothing in them changes the answer.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let health = health(
        fail_health_if,
        std::env::var("HELLO_REGION").ok().as_deref(),
    );
    let (status, body) = route(path, &health);
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Whether the service is healthy, or why not.
fn health(fail_health_if: Option<&Path>, region: Option<&str>) -> Result<(), String> {
    if let Some(file) = fail_health_if.filter(|f| f.exists()) {
        return Err(format!("asked to fail: {} exists", file.display()));
    }
    if cfg!(feature = "require-region") && region.is_none_or(str::is_empty) {
        return Err("HELLO_REGION is not set: this release needs to know its region".into());
    }
    Ok(())
}

/// The status line and body for `path`.
fn route(path: &str, health: &Result<(), String>) -> (&'static str, String) {
    match (path, health) {
        ("/", _) => ("200 OK", format!("hello {VERSION}\n")),
        ("/version", _) => ("200 OK", format!("{VERSION}\n")),
        ("/health", Ok(())) => ("200 OK", "ok\n".into()),
        ("/health", Err(why)) => ("503 Service Unavailable", format!("{why}\n")),
        _ => ("404 Not Found", "not found\n".into()),
    }
}

fn probe_command(args: &[String]) -> Result<(), String> {
    let (address, path) = match args {
        [a, p, ..] => (a.as_str(), p.as_str()),
        _ => return Err("usage: hello probe HOST:PORT PATH [--attempts N]".into()),
    };
    let attempts: u32 = match args.get(2..) {
        Some([flag, n]) if flag == "--attempts" => n
            .parse()
            .map_err(|_| format!("--attempts `{n}` is not a number"))?,
        Some([]) | None => 1,
        Some(other) => return Err(format!("unexpected arguments {other:?}")),
    };
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        match get(address, path) {
            Ok((200, body)) => {
                println!("GET http://{address}{path}: 200 {}", body.trim());
                return Ok(());
            }
            Ok((status, body)) => last = format!("{status} {}", body.trim()),
            Err(e) => last = e,
        }
        if attempt < attempts {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Err(format!("GET http://{address}{path}: {last}"))
}

/// One `GET`: the status code and the body.
fn get(address: &str, path: &str) -> Result<(u16, String), String> {
    let addr = address
        .parse()
        .map_err(|_| format!("`{address}` is not HOST:PORT"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    parse_response(&response)
}

/// The status code and the body of an HTTP/1.1 response.
fn parse_response(response: &str) -> Result<(u16, String), String> {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn root_and_version_name_the_release() {
        assert_eq!(
            route("/", &Ok(())),
            ("200 OK", format!("hello {VERSION}\n"))
        );
        assert_eq!(route("/version", &Ok(())).1, format!("{VERSION}\n"));
    }

    #[test]
    fn health_is_503_with_the_reason_while_unhealthy() {
        let sick = Err("asked to fail".to_string());
        assert_eq!(route("/health", &Ok(())).0, "200 OK");
        assert_eq!(
            route("/health", &sick),
            ("503 Service Unavailable", "asked to fail\n".into())
        );
        assert_eq!(route("/nope", &Ok(())).0, "404 Not Found");
    }

    #[test]
    fn the_fail_file_makes_it_unhealthy_only_while_it_exists() {
        let dir = std::env::temp_dir().join(format!("hello-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fail-health");
        let region = Some("eu-west-1");
        assert!(health(Some(&file), region).is_ok());
        std::fs::write(&file, "").unwrap();
        assert!(health(Some(&file), region).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn serve_options_need_a_valid_port() {
        let o = ServeOptions::parse(&args(&["--port", "18181", "--pid-file", "run/x.pid"]));
        assert_eq!(
            o,
            Ok(ServeOptions {
                port: 18181,
                pid_file: Some("run/x.pid".into()),
                fail_health_if: None
            })
        );
        assert!(ServeOptions::parse(&args(&["--port", "http"])).is_err());
        assert!(ServeOptions::parse(&args(&["--colour"])).is_err());
    }

    #[test]
    fn responses_are_read_as_status_and_body() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
        assert_eq!(parse_response(ok), Ok((200, "ok\n".to_string())));
        let sick = "HTTP/1.1 503 Service Unavailable\r\n\r\nHELLO_REGION is not set\n";
        assert_eq!(parse_response(sick).unwrap().0, 503);
        assert!(parse_response("SSH-2.0-OpenSSH").is_err());
    }

    #[test]
    fn release_1_1_needs_a_region() {
        let healthy_without_region = health(None, None).is_ok();
        assert_eq!(healthy_without_region, !cfg!(feature = "require-region"));
        assert!(health(None, Some("eu-west-1")).is_ok());
        assert!(health(None, Some("")).is_err() || !cfg!(feature = "require-region"));
    }
}
