//! Child processes of the devnet: anvil and the nodes. Output goes to log files; each child
//! gets SIGTERM when the devnet process dies (so a killed devnet leaves nothing behind), and
//! [`stop_all`] stops them in order with a deadline.

use std::{fs::OpenOptions, path::Path, process::Stdio, time::Duration};

use eyre::WrapErr;
use tokio::process::{Child, Command};

/// How long a node gets to drain after SIGTERM before it is killed.
pub(crate) const NODE_STOP_GRACE: Duration = Duration::from_secs(20);
/// How long anvil gets to dump its state after SIGINT.
const ANVIL_STOP_GRACE: Duration = Duration::from_secs(10);

/// A running child and what it is.
pub(crate) struct Running {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) exited: Option<std::process::ExitStatus>,
}

impl Running {
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it exited (and records how).
    pub(crate) fn check(&mut self) -> Option<std::process::ExitStatus> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some(status);
        }
        self.exited
    }
}

/// Starts `program args` with stdout and stderr appended to `log`.
pub(crate) fn spawn(
    name: &str,
    program: &Path,
    args: &[std::ffi::OsString],
    log: &Path,
) -> eyre::Result<Running> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .wrap_err_with(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // Its own process group: a Ctrl-C in the terminal reaches the devnet only, which
        // then stops every child in order.
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: `getpid` before the fork; `prctl`, `getppid` are async-signal-safe and touch no
    // memory of the parent.
    let devnet_pid = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            // The child gets SIGTERM if the devnet dies without stopping it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The devnet died between the fork and the `prctl`: no signal will come. (No
            // allocation after the fork: a raw OS error.)
            if libc::getppid() != devnet_pid {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .wrap_err_with(|| format!("starting {name} ({})", program.display()))?;
    Ok(Running {
        name: name.to_string(),
        child,
        exited: None,
    })
}

fn signal(running: &Running, signal: libc::c_int) {
    if let Some(pid) = running
        .pid()
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
    {
        // SAFETY: sending a signal to a pid we spawned and have not reaped.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

async fn stop(running: &mut Running, first: libc::c_int, grace: Duration) {
    if running.check().is_some() {
        return;
    }
    signal(running, first);
    match tokio::time::timeout(grace, running.child.wait()).await {
        Ok(Ok(status)) => running.exited = Some(status),
        _ => {
            eprintln!(
                "{} did not stop within {}; killing it",
                running.name,
                humantime::format_duration(grace)
            );
            let _ = running.child.kill().await;
            running.exited = running.child.try_wait().ok().flatten();
        }
    }
}

/// Stops the nodes (SIGTERM, all at once, each with [`NODE_STOP_GRACE`]), then anvil.
pub(crate) async fn stop_all(nodes: &mut [Running], anvil: Option<&mut Running>) {
    futures::future::join_all(
        nodes
            .iter_mut()
            .map(|node| stop(node, libc::SIGTERM, NODE_STOP_GRACE)),
    )
    .await;
    if let Some(anvil) = anvil {
        // anvil writes its --state file on SIGINT.
        stop(anvil, libc::SIGINT, ANVIL_STOP_GRACE).await;
    }
}
