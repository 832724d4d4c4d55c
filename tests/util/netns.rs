//! A network namespace a test creates (`ip netns add`), with `eth0` at a given address (a veth whose peer
//! stays inside), deleted on drop.
// Each test area uses a different part of this helper.
#![allow(dead_code)]

use std::process::Command;

pub struct Netns {
    pub name: String,
}

/// Runs a program that must succeed; its standard output.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    /// `wkjt-<pid>-<tag>`, with `eth0` at `address` (e.g. 172.31.0.11/24).
    pub fn new(tag: &str, address: &str) -> Netns {
        let name = format!("wkjt-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"]);
        ns.ip(&["addr", "add", address, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["link", "set", "eth0-peer", "up"]);
        ns
    }

    /// `ip -n <ns> args...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A program inside the namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// wkjoin's routes as `ip` shows them.
    pub fn owned_routes(&self) -> Vec<String> {
        self.ip(&["route", "show", "proto", "147"]).lines().map(|l| l.trim().to_string()).collect()
    }

    /// Runs `f` on a thread inside the namespace (netlink sockets bind to the namespace of the thread that
    /// opens them); with `private_mounts`, also in a mount namespace of its own whose mounts never reach the host.
    pub fn run<T: Send + 'static>(&self, private_mounts: bool, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("netns file");
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns (needs root)");
            if private_mounts {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare the mount namespace");
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .expect("make / private");
            }
            f()
        })
        .join()
        .expect("netns thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
