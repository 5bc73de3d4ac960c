"""A real one-node Slurm on this machine, for the tests and for trying the Slurm launcher by hand.

Needs Debian's (or any distribution's) ``slurmctld``, ``slurmd``,
``slurm-client``, ``slurmdbd``, ``munge`` and ``mariadb-server`` packages:
``.ci/run`` installs them.  Everything lives in one private folder: its own
munge key and socket, a MariaDB with its own data directory and port, and
``slurm.conf`` / ``slurmdbd.conf`` on free ports, so nothing under
``/etc`` is read or written and a second cluster can run beside the first.
Clients find the cluster through ``SLURM_CONF`` (``Cluster.env``).

Accounting (slurmdbd on MariaDB) is there because submitit reads job states
with ``sacct``; without it a job that dies before writing its result (a
killed rank, a requeue) would look "unknown" for ever.

The node has two partitions on one host: ``debug`` (the default, preemptible:
a job there gets SIGTERM when a job of ``urgent`` needs its CPUs, then
SIGKILL after ``KillWait`` and a requeue) and ``urgent``.  The timings are
short, for tests: no grace time, 3 s from SIGTERM to SIGKILL, a requeued
job eligible again after 5 s (``cred_expire``; Slurm's default is 120 s),
and a scheduler pass every 2 s.

By hand::

    python tests/slurm_cluster.py up /tmp/qbench-slurm     # prints the export line, leaves it running
    python tests/slurm_cluster.py down /tmp/qbench-slurm   # stops every daemon it started
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "sacct", "squeue", "scontrol", "scancel", "sinfo", "sacctmgr")
NODE_CPUS = 4  # more than this machine's cores: the CPUs are Slurm's bookkeeping, not a promise
NODE_MEMORY_MB = 8000
GRACE_S = 0  # preemption: SIGTERM now, SIGKILL after KillWait (3 s), requeue
CRED_EXPIRE_S = 5  # how long a requeued job waits before it may start again


def missing_programs() -> list[str]:
    """The daemons and clients this cluster needs that are not installed."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [p for p in DAEMONS + CLIENTS if shutil.which(p, path=search) is None]


def _program(name: str) -> str:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])) or name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    folder: Path
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.folder / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client (and so every job) needs to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        f = self.folder
        for sub in ("etc", "state", "spool", "log", "run", "db", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        self.ports = {k: _free_port() for k in ("ctld", "slurmd", "dbd", "mysql")}
        munge = f"AuthInfo=socket={f / 'munge' / 'munge.sock'}"
        self.conf.write_text("\n".join([
            # cred_expire: also how long a requeued job waits before it may start again (default 120 s)
            f"{munge},cred_expire={CRED_EXPIRE_S}",
            "ClusterName=qbench",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={self.ports['ctld']}",
            f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={self.ports['dbd']}",
            f"AccountingStoragePass={f / 'munge' / 'munge.sock'}",  # the munge socket, for slurmdbd
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2,bf_interval=2",  # a requeued job starts within seconds
            "PreemptType=preempt/partition_prio",
            "PreemptMode=REQUEUE",
            "KillWait=3",
            "MinJobAge=600",
            "InactiveLimit=0",
            "MessageTimeout=30",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 "
            f"PreemptMode=REQUEUE GraceTime={GRACE_S}",
            f"PartitionName=urgent Nodes={self.node} MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF",
            "",
        ]))
        dbd = self.folder / "etc" / "slurmdbd.conf"
        dbd.write_text("\n".join([
            "AuthType=auth/munge",
            munge,
            "DbdHost=localhost",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.ports['dbd']}",
            "SlurmUser=root",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mysql']}",
            "StorageUser=root",
            "StorageLoc=slurm_acct_db",
            f"PidFile={f / 'run' / 'slurmdbd.pid'}",
            f"LogFile={f / 'log' / 'slurmdbd.log'}",
            "",
        ]))
        dbd.chmod(0o600)

    def _run(self, *cmd: str, timeout: float = 60) -> None:
        subprocess.run([_program(cmd[0]), *cmd[1:]], check=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **self.env})

    def _wait(self, what: str, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                                 for p in sorted((self.folder / "log").glob("*.log")))
                raise RuntimeError(f"one-node Slurm: {what} not ready after {timeout:.0f} s\n{logs}")
            time.sleep(0.2)

    def _answers(self, *cmd: str) -> bool:
        return subprocess.run([_program(cmd[0]), *cmd[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, **self.env}, timeout=30).returncode == 0

    def start(self) -> Cluster:
        """Start munge, MariaDB, slurmdbd, slurmctld and slurmd; return once a job can run."""
        f = self.folder
        self._write_config()
        key = f / "munge" / "munge.key"
        self._run("mungekey", "--create", f"--keyfile={key}")
        key.chmod(0o600)
        self._run("munged", "--force", f"--key-file={key}", f"--socket={f / 'munge' / 'munge.sock'}",
                  f"--pid-file={f / 'run' / 'munged.pid'}", f"--log-file={f / 'log' / 'munged.log'}",
                  f"--seed-file={f / 'munge' / 'munged.seed'}")
        self._run("mariadb-install-db", "--no-defaults", f"--datadir={f / 'db'}", "--user=root",
                  "--auth-root-authentication-method=normal", "--skip-test-db", timeout=120)
        subprocess.Popen([_program("mariadbd"), "--no-defaults", f"--datadir={f / 'db'}", "--user=root",
                          f"--socket={f / 'run' / 'mysql.sock'}", f"--port={self.ports['mysql']}",
                          "--bind-address=127.0.0.1", f"--pid-file={f / 'run' / 'mariadbd.pid'}",
                          f"--log-error={f / 'log' / 'mariadbd.log'}", "--skip-grant-tables",
                          "--innodb-buffer-pool-size=128M", "--innodb-lock-wait-timeout=900",
                          "--innodb-log-file-size=64M"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        self._wait("MariaDB", lambda: _port_open(self.ports["mysql"]))
        self._run("slurmdbd")
        self._wait("slurmdbd", lambda: _port_open(self.ports["dbd"]))
        self._run("slurmctld")
        self._wait("slurmctld", lambda: self._answers("scontrol", "ping"))
        self._run("slurmd", "-N", self.node)
        self._wait("slurmd", lambda: self._idle())
        self._wait("accounting", lambda: self._answers("sacct", "-n", "-X", "-j", "1"))
        return self

    def _idle(self) -> bool:
        out = subprocess.run([_program("sinfo"), "-h", "-N", "-o", "%t"], capture_output=True, text=True,
                             env={**os.environ, **self.env}, timeout=30).stdout
        return set(out.split()) == {"idle"}  # one line per partition

    def stop(self) -> None:
        """Cancel every job, stop every daemon (each by the pid it wrote), remove the folder."""
        pid = _pid(self.folder / "run" / "slurmctld.pid")
        if self.conf.exists() and pid and _alive(pid):
            self.cancel_all()
        # every process of this cluster runs in its folder (the daemons in log/): anything left, e.g. a
        # step daemon whose slurmd is gone, is found there
        _stop([self.folder / "run" / f"{name}.pid" for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd")])
        _stop([self.folder / "run" / "munged.pid"])  # last: the others talk to it while they stop
        _kill_left_in(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job and wait until none is left (their step daemons end their processes)."""
        def queue() -> str:
            return subprocess.run([_program("squeue"), "--noheader", "--format", "%i"], capture_output=True,
                                  text=True, env={**os.environ, **self.env}, timeout=30).stdout.strip()
        try:
            subprocess.run([_program("scancel"), "--user", os.environ.get("USER", "root")],
                           env={**os.environ, **self.env}, capture_output=True, timeout=30)
            deadline = time.monotonic() + timeout
            while queue() and time.monotonic() < deadline:
                time.sleep(0.5)
        except subprocess.TimeoutExpired:
            pass


def _kill_left_in(folder: Path) -> None:
    """SIGKILL every process whose working directory is inside ``folder`` (this cluster's, and only those)."""
    root = str(folder.resolve())
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd").removesuffix(" (deleted)")
        except OSError:
            continue
        if (cwd == root or cwd.startswith(root + os.sep)) and int(proc.name) != os.getpid():
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pid_files: list[Path], timeout: float = 5) -> None:
    """SIGTERM to each daemon, SIGKILL to any still there after ``timeout``."""
    pids = [pid for pid in map(_pid, pid_files) if pid is not None and _alive(pid)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in filter(_alive, pids):
        os.kill(pid, signal.SIGKILL)


def start(folder: str | Path | None = None) -> Cluster:
    """A running one-node cluster in ``folder`` (a fresh private folder if none); stops it again on failure."""
    cluster = Cluster(Path(folder) if folder else Path(tempfile.mkdtemp(prefix="qbench-slurm-")))
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python tests/slurm_cluster.py up|down FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[1]).resolve()
    if argv[0] == "down":
        Cluster(folder).stop()
        return 0
    missing = missing_programs()
    if missing:
        print(f"not installed: {', '.join(missing)} (apt-get install slurmctld slurmd slurm-client slurmdbd "
              "munge mariadb-server)", file=sys.stderr)
        return 2
    cluster = start(folder)
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
