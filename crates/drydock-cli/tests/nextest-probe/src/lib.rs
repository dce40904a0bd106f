//! What every test of this crate does: reach the Redis of `REDIS_URL` at once, and note what
//! it found in `$PROBE_DIR/<test>`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Runs the probe for test `name`.
pub fn probe(name: &str) {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let var = |key: &str| std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set"));
    let url = var("REDIS_URL");
    let (authority, db) = url
        .strip_prefix("redis://")
        .and_then(|rest| rest.rsplit_once('/'))
        .unwrap_or_else(|| panic!("REDIS_URL is not redis://[:password@]host:port/db"));
    // drydock's Redis asks for the password its URL carries.
    let (password, address) = match authority.rsplit_once('@') {
        Some((userinfo, address)) => (userinfo.strip_prefix(':'), address),
        None => (None, authority),
    };
    // No retry: the server must be ready before the first test.
    let stream = TcpStream::connect(address).expect("connect to REDIS_URL at once");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut redis = Redis {
        reader: BufReader::new(stream.try_clone().expect("clone")),
        writer: stream,
    };
    if let Some(password) = password {
        assert_eq!(redis.call(&["AUTH", password]), "OK");
    }
    assert_eq!(redis.call(&["SELECT", db]), "OK");
    assert_eq!(redis.call(&["SET", name, "seen"]), "OK");
    let info = redis.call(&["INFO", "server"]);
    let server_run = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .expect("run_id in INFO server")
        .trim();
    let record = format!(
        "started_ms={started}\nrun={}\ninstance={}\nredis_address={address}/{db}\nredis_server_run={server_run}\n",
        var("DRYDOCK_RUN_ID"),
        var("DRYDOCK_INSTANCE"),
    );
    std::fs::write(std::path::Path::new(&var("PROBE_DIR")).join(name), record).expect("record");
}

struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Redis {
    /// One command; its answer as text (a simple or bulk string).
    fn call(&mut self, args: &[&str]) -> String {
        let mut command = format!("*{}\r\n", args.len());
        for arg in args {
            command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.writer.write_all(command.as_bytes()).expect("write");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        let line = line.trim_end();
        match line.split_at(1) {
            ("+", text) => text.to_string(),
            ("$", len) => {
                let len: usize = len.parse().expect("bulk length");
                let mut body = vec![0; len + 2];
                self.reader.read_exact(&mut body).expect("bulk");
                String::from_utf8_lossy(&body[..len]).into_owned()
            }
            _ => panic!("redis answered {line:?} to {args:?}"),
        }
    }
}
