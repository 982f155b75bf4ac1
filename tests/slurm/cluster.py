"""A real single-node SLURM cluster on loopback, for tests.

Why a real cluster: the Snakemake SLURM plugin talks to `sbatch`, `sacct` and `sacctmgr`, and the
things worth testing (GPU requests reaching SLURM, retries after a killed job) only show up there.
The cluster has accounting (MariaDB + slurmdbd) because the plugin polls job states with `sacct`,
and two fake GPUs (character devices cloning /dev/null) so that `--gpus=1` can be scheduled.

Every daemon runs in the foreground in its own session, with all state, sockets, logs and ports
(picked free at start) under one temporary directory, and is stopped by its recorded PID.
Nothing is installed here: `.ci/install-slurm.sh` installs the Debian packages. Needs root.

Run `python tests/slurm/cluster.py` (as root) to keep a cluster up by hand; it prints the
`SLURM_CONF` and `PATH` to export and stops the daemons on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping

#: Programs the cluster needs; the tests skip when any is missing.
REQUIRED_PROGRAMS = (
    "munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd",
    "sacctmgr", "sacct", "sbatch", "srun", "squeue", "scancel", "sinfo", "setpriv", "mknod",
)

#: Fields `sacct_jobs` returns, one dict per job allocation.
SACCT_FIELDS = (
    "JobID", "JobName", "Comment", "Partition", "ReqTRES", "AllocTRES", "State", "ExitCode",
    "WorkDir",
)


class ClusterError(RuntimeError):
    """A daemon failed to start or the cluster did not become usable."""


def missing_programs() -> list[str]:
    """Return the required programs that are not on PATH (empty when the cluster can start)."""
    return [name for name in REQUIRED_PROGRAMS if shutil.which(name) is None]


def _free_port() -> int:
    """Return a TCP port nobody listens on now (SLURM daemons bind 0.0.0.0, so check that)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _node_hardware() -> dict[str, int]:
    """CPU layout and memory of this machine as `slurmd -C` reports it."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return {key: int(fields[key]) for key in keys}


class LocalSlurm:
    """One single-node SLURM cluster (partitions `cpu`, default, and `gpu`) with fake GPUs.

    Use as a context manager, or call `start()` and `stop()`. Client commands must run with
    `self.env` (it sets `SLURM_CONF`); `run()` does that.
    """

    def __init__(self, base: Path | None = None, name: str = "regnntest", gpus: int = 2):
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="regnn-slurm-"))
        self._owns_base = base is None
        self.name = name
        self.gpus = gpus
        self.conf = self.base / "etc" / "slurm.conf"
        self.logs = self.base / "log"
        self.env: dict[str, str] = {
            **os.environ,
            "SLURM_CONF": str(self.conf),
            "PATH": f"{self.base / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self._daemons: list[tuple[str, subprocess.Popen, Path]] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> "LocalSlurm":
        """Write the configuration, start every daemon and wait until the node is idle."""
        if os.geteuid() != 0:
            raise ClusterError("the local SLURM cluster needs root (slurmd launches jobs)")
        missing = missing_programs()
        if missing:
            raise ClusterError(f"SLURM programs not installed: {', '.join(missing)}")
        try:
            self._start(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, deadline: float) -> None:
        ports = {name: _free_port() for name in ("mysql", "slurmdbd", "slurmctld", "slurmd")}
        password = secrets.token_hex(16)
        for sub in ("bin", "etc", "log", "pids", "state", "spool", "dev"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        # munged runs as `munge` and mariadbd as `mysql`: both must reach their directories.
        self.base.chmod(0o755)
        munge_socket = self._prepare_munge()
        self._write_configs(ports, password, munge_socket)
        mysql_data = self._prepare_mysql(password)
        self._write_srun_shim()

        self._spawn("munged", [
            "setpriv", "--reuid=munge", "--regid=munge", "--clear-groups",
            "munged", "--foreground", f"--socket={munge_socket}",
            f"--key-file={munge_socket.parent / 'munge.key'}",
            f"--pid-file={munge_socket.parent / 'munged.pid'}",
            f"--seed-file={munge_socket.parent / 'munged.seed'}",
            f"--log-file={self.logs / 'munged.log'}",
        ])
        self._wait("munged", lambda: munge_socket.exists(), deadline)
        self._spawn("mariadbd", [
            "mariadbd", "--no-defaults", f"--datadir={mysql_data}", "--user=mysql",
            "--bind-address=127.0.0.1", f"--port={ports['mysql']}",
            f"--socket={mysql_data.parent / 'mysqld.sock'}",
            f"--pid-file={mysql_data.parent / 'mysqld.pid'}",
            f"--init-file={mysql_data.parent / 'init.sql'}",
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
        ])
        self._wait("mariadbd", lambda: _port_open(ports["mysql"]), deadline)
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait("slurmdbd", lambda: _port_open(ports["slurmdbd"]), deadline)
        # The cluster must be known to the database before slurmctld registers with it.
        self._wait("slurmdbd", lambda: self._succeeds(["sacctmgr", "-i", "add", "cluster", self.name]),
                   deadline)
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait("slurmd", self._node_idle, deadline)

    def stop(self, timeout: float = 20.0) -> None:
        """Cancel leftover jobs, then stop the daemons by PID, newest first; remove a temp base."""
        if any(name == "slurmctld" for name, _, _ in self._daemons):
            self._succeeds(["scancel", "--full", "--user=root"])
        while self._daemons:
            name, process, pid_file = self._daemons.pop()
            pid = int(pid_file.read_text())
            if process.poll() is None:
                os.kill(pid, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(pid, signal.SIGKILL)
                    process.wait()
            pid_file.unlink()
        if self._owns_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- clients ---------------------------------------------------------------------------

    def run(self, args: list[str], check: bool = True, timeout: float = 30
            ) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster, capturing text output."""
        return subprocess.run(args, env=self.env, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def sacct_jobs(self, workdir: Path | None = None) -> list[dict[str, str]]:
        """All job allocations the accounting database knows, oldest first.

        Each dict has the `SACCT_FIELDS` plus `Rule` (the Snakemake rule, read from the comment
        the plugin sets: `rule_<name>` or `rule_<name>_wildcards_<values>`) and `State` reduced
        to its first word (`CANCELLED by 0` -> `CANCELLED`). With `workdir`, only jobs submitted
        for that Snakemake working directory.
        """
        out = self.run(["sacct", "--allusers", "--allocations", "--parsable2", "--noheader",
                        "--starttime=2000-01-01", f"--format={','.join(SACCT_FIELDS)}"]).stdout
        jobs = []
        for line in out.splitlines():
            job = dict(zip(SACCT_FIELDS, line.split("|")))
            job["State"] = job["State"].split()[0] if job["State"] else ""
            comment = job["Comment"]
            job["Rule"] = comment[5:].split("_wildcards_")[0] if comment.startswith("rule_") else ""
            if workdir is None or Path(job["WorkDir"]).resolve() == Path(workdir).resolve():
                jobs.append(job)
        return jobs

    # --- internals -------------------------------------------------------------------------

    def _prepare_munge(self) -> Path:
        """A fresh key in a munge-owned directory; returns the socket path."""
        munge_dir = self.base / "munge"
        munge_dir.mkdir(mode=0o700, exist_ok=True)
        key = munge_dir / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        for path in (munge_dir, key):
            shutil.chown(path, "munge", "munge")
        munge_dir.chmod(0o755)  # clients (the SLURM daemons) connect to the socket inside
        return munge_dir / "munge.socket"

    def _prepare_mysql(self, password: str) -> Path:
        """An initialised data directory and an init file creating slurmdbd's user."""
        mysql_dir = self.base / "mysql"
        data = mysql_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        init = mysql_dir / "init.sql"
        init.touch(mode=0o600)  # holds slurmdbd's database password
        init.write_text(
            f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}';\n"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';\n")
        for path in (mysql_dir, data, init):
            shutil.chown(path, "mysql", "mysql")
        result = subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
             "--auth-root-authentication-method=socket", "--skip-test-db",
             "--innodb-log-file-size=8M"],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise ClusterError(f"mariadb-install-db failed for {data}:\n{result.stderr[-2000:]}")
        return data

    def _write_configs(self, ports: Mapping[str, int], password: str, munge_socket: Path) -> None:
        hw = _node_hardware()
        memory = int(hw["RealMemory"] * 0.9)
        etc = self.base / "etc"
        for index in range(self.gpus):
            device = self.base / "dev" / f"gpu{index}"
            if not device.exists():  # a clone of /dev/null: SLURM only accepts device files
                subprocess.run(["mknod", "-m", "666", str(device), "c", "1", "3"], check=True)
        gpu_files = ",".join(str(self.base / "dev" / f"gpu{i}") for i in range(self.gpus))
        auth = f"AuthType=auth/munge\nAuthInfo=socket={munge_socket}\n"
        (etc / "slurm.conf").write_text(
            f"ClusterName={self.name}\n"
            "SlurmctldHost=localhost(127.0.0.1)\n"
            f"SlurmctldPort={ports['slurmctld']}\nSlurmdPort={ports['slurmd']}\n"
            "SlurmUser=root\nSlurmdUser=root\n" + auth + "CredType=cred/munge\n"
            f"StateSaveLocation={self.base / 'state'}\nSlurmdSpoolDir={self.base / 'spool'}\n"
            f"SlurmctldPidFile={self.base / 'state' / 'slurmctld.pid'}\n"
            f"SlurmdPidFile={self.base / 'spool' / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={self.logs / 'slurmctld.log'}\n"
            f"SlurmdLogFile={self.logs / 'slurmd.log'}\n"
            f"PlugStackConfig={etc / 'plugstack.conf'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            "SchedulerType=sched/builtin\nMpiDefault=none\nReturnToService=2\n"
            "JobAcctGatherType=jobacct_gather/none\nKillWait=2\nMinJobAge=300\n"
            "DefMemPerCPU=256\nGresTypes=gpu\n"
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={ports['slurmdbd']}\n"
            # the munge socket for talking to slurmdbd (AuthInfo does not cover that link)
            f"AccountingStoragePass={munge_socket}\n"
            "AccountingStorageTRES=gres/gpu\nAccountingStoreFlags=job_comment\n"
            f"NodeName=localhost NodeAddr=127.0.0.1 Port={ports['slurmd']} CPUs={hw['CPUs']} "
            f"Boards={hw['Boards']} SocketsPerBoard={hw['SocketsPerBoard']} "
            f"CoresPerSocket={hw['CoresPerSocket']} ThreadsPerCore={hw['ThreadsPerCore']} "
            f"RealMemory={memory} Gres=gpu:{self.gpus} State=UNKNOWN\n"
            "PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
            "PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP\n")
        (etc / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName=localhost Name=gpu File={gpu_files}\n")
        (etc / "plugstack.conf").write_text("")
        dbd_conf = etc / "slurmdbd.conf"
        dbd_conf.touch(mode=0o600)
        dbd_conf.write_text(
            auth + f"DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={ports['slurmdbd']}\n"
            "SlurmUser=root\nStorageType=accounting_storage/mysql\n"
            f"StorageHost=127.0.0.1\nStoragePort={ports['mysql']}\n"
            f"StorageUser=slurm\nStoragePass={password}\nStorageLoc=slurm_acct_db\n"
            f"PidFile={self.base / 'state' / 'slurmdbd.pid'}\n"
            f"LogFile={self.logs / 'slurmdbd.log'}\n")

    def _write_srun_shim(self) -> None:
        """Put an `srun` first on the jobs' PATH that restores SLURM_CONF.

        Inside a job the Snakemake jobstep plugin removes every SLURM_* variable, SLURM_CONF
        included, before it calls `srun`; real clusters keep slurm.conf in /etc/slurm, this one keeps
        it in the temporary directory, so without the shim `srun` finds no configuration.
        """
        shim = self.base / "bin" / "srun"
        shim.write_text(f"#!/bin/sh\nSLURM_CONF='{self.conf}' exec '{shutil.which('srun')}' \"$@\"\n")
        shim.chmod(0o755)

    def _spawn(self, name: str, args: list[str]) -> None:
        """Start one daemon in the foreground of its own session and record its PID."""
        with open(self.logs / f"{name}.out", "ab") as out:
            process = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        pid_file = self.base / "pids" / f"{name}.pid"
        pid_file.write_text(str(process.pid))
        self._daemons.append((name, process, pid_file))

    def _wait(self, name: str, ready, deadline: float) -> None:
        """Poll `ready()` until it holds; fail with the daemon's log if it dies or time runs out."""
        process = next(p for n, p, _ in self._daemons if n == name)
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                state = "exited" if process.poll() is not None else "did not become ready"
                raise ClusterError(f"{name} {state}; log tail:\n{self._log_tail(name)}")
            time.sleep(0.2)

    def _succeeds(self, args: list[str]) -> bool:
        """Whether a client command exits 0 within 10 s (daemons that are starting may hang it)."""
        try:
            return self.run(args, check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _node_idle(self) -> bool:
        try:
            result = self.run(["sinfo", "--noheader", "--Node", "--format=%T"], check=False,
                              timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0 and result.stdout.split()[:1] == ["idle"]

    def _log_tail(self, name: str, chars: int = 3000) -> str:
        text = ""
        for log in (self.logs / f"{name}.out", self.logs / f"{name}.log"):
            if log.exists():
                text += f"--- {log}\n{log.read_text(errors='replace')[-chars:]}"
        return text


def main() -> None:
    """Keep a cluster up until Ctrl-C or SIGTERM, for trying workflows against it by hand."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with LocalSlurm() as cluster:
        print(f"export SLURM_CONF={cluster.conf} PATH={cluster.base / 'bin'}:$PATH"
              "  # Ctrl-C stops the cluster", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
