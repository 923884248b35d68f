"""Measure on a real device over ssh: copy the self-contained runner, the runtime modules
that open the artifacts, the artifacts and the test inputs, run the same measurement there,
bring the JSON back.

Only python3, numpy and a runtime (onnxruntime, openvino or ncnn) are needed on the device. Every ssh
call is bounded by a timeout; failures become one clear sentence.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgekd.bench.local import RUNNER, Job, Settings, parse_runner_output, runner_command
from edgekd.errors import UserError
from edgekd.runtimes import KINDS, RUNTIMES


@dataclass(frozen=True)
class Remote:
    destination: str              # user@host
    port: int | None = None
    identity: Path | None = None
    python: str = "python3"
    connect_timeout_s: int = 10

    def ssh_options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR"]
        if self.identity:
            opts += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return opts

    def ssh(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        port = ["-p", str(self.port)] if self.port else []
        return self._call(["ssh", *self.ssh_options(), *port, self.destination, command], timeout)

    def scp(self, files: list[Path], directory: str, timeout: float) -> None:
        port = ["-P", str(self.port)] if self.port else []
        done = self._call(["scp", "-q", *self.ssh_options(), *port, *map(str, files),
                           f"{self.destination}:{directory}/"], timeout)
        if done.returncode != 0:
            raise UserError(f"copying to {self.destination} failed: {_last_line(done.stderr)}")

    def _call(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise UserError(f"{self.destination} did not answer within {timeout:.0f} s") from None
        except FileNotFoundError:
            raise UserError("the ssh client is not installed on this machine") from None


class Session:
    """A working directory on the device holding the runner, inputs and artifacts."""

    def __init__(self, remote: Remote, inputs: Path, jobs: list[Job]):
        self.remote = remote
        done = remote.ssh("mktemp -d /tmp/edgekd.XXXXXX", timeout=30)
        if done.returncode != 0:
            raise UserError(f"cannot reach {remote.destination} over ssh: {_last_line(done.stderr)}")
        self.directory = PurePosixPath(done.stdout.strip())
        self._stage = tempfile.TemporaryDirectory()
        try:
            self._upload(inputs, jobs)
        except BaseException:  # a refusal or Ctrl-C: leave nothing behind on the device
            self.close()
            raise

    def _upload(self, inputs: Path, jobs: list[Job]) -> None:
        remote = self.remote
        check = remote.ssh(f"{shlex.quote(remote.python)} -c 'import numpy'", timeout=60)
        if check.returncode != 0:
            raise UserError(f"{remote.python} on {remote.destination} cannot import numpy: {_last_line(check.stderr)}")
        # each artifact goes in its own folder, keeping an IR's or ncnn's .bin beside its graph
        self.paths: dict[Job, str] = {}
        used = sorted({job.runtime for job in jobs})
        # a runtime module keeps a prefixed name there: "openvino.py" beside the runner would
        # shadow the openvino package itself
        openers = {name: self.directory / _opener_name(name) for name in used}
        staged = Path(self._stage.name)
        for name in used:
            (staged / _opener_name(name)).write_bytes(RUNTIMES[name].opener.read_bytes())
        remote.scp([RUNNER, inputs, *(staged / _opener_name(name) for name in used)], str(self.directory), timeout=120)
        self.openers = openers
        for i, job in enumerate(jobs):
            folder = f"{self.directory}/a{i}"
            made = remote.ssh(f"mkdir -p {shlex.quote(folder)}", timeout=30)
            if made.returncode != 0:
                raise UserError(f"cannot create {folder} on {remote.destination}: {_last_line(made.stderr)}")
            remote.scp(KINDS[job.artifact].files(job.path), folder, timeout=300)
            self.paths[job] = f"{folder}/{job.path.name}"
        self.inputs = f"{self.directory}/{inputs.name}"

    def run(self, job: Job, settings: Settings, _inputs: Path) -> dict:
        argv = runner_command(Job(job.member, job.artifact, Path(self.paths[job]), job.runtime), settings,
                              Path(self.inputs), python=self.remote.python, runner=self.directory / RUNNER.name,
                              opener=self.openers[job.runtime])
        try:
            done = self.remote.ssh(" ".join(shlex.quote(a) for a in argv), timeout=settings.timeout_s)
        except UserError as e:
            return {"error": str(e)}
        return parse_runner_output(done.stdout, done.stderr, done.returncode)

    def close(self) -> None:
        self._stage.cleanup()
        try:
            self.remote.ssh(f"rm -rf {shlex.quote(str(self.directory))}", timeout=30)
        except UserError:
            pass


def _opener_name(runtime: str) -> str:
    return f"edgekd_runtime_{runtime}.py"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"
