"""Long work is never lost to a client's timeout: a tool call blocks at most PIXELMCP_CALL_BUDGET_S; work
that takes longer goes on as a job, which `check_job` (or the `pixelmcp://jobs/{id}` resource) reports and
finally answers with the tool's own complete result.

A job is the whole tool call (argument checks, rewrite, generation, storing), run in the server's
background task group from the start, so nothing is redone when it outlives the call. The call
waits for it up to the budget (server/budget.py): a call that finishes in time returns its normal
result and leaves no job behind. Progress goes to the calling client while its call is open, and
into the job's status always.

A job has one shape, its JobRecord, whose `result` is the tool's answer as stored (JSON): a record
read back from another process's file is the same class as a live one, and `wait` waits for either.

Jobs outlive the call and the session that started them: any connection holding the same
credential can collect them (stdio: the same machine; HTTP: the same bearer token, or any local
client of a token-less loopback server). Their ids are 96-bit random. A job's record is written to
`<output_dir>/jobs/<id>.json` when it leaves its call and again when it ends, so a finished job can
be collected even from a new server process (a new stdio connection) until it expires. At most
PIXELMCP_MAX_JOBS are kept; finished ones expire after PIXELMCP_JOB_RETENTION_S.

Several instances behind one load balancer share the output folder, so any of them can answer
check_job: while a job runs, the instance running it rewrites its file every JOB_HEARTBEAT_S, and
another instance reports that status (waiting by re-reading the file), returns the result once
the file holds it, and passes a cancel on as a `<id>.cancel` file that the running instance acts
on at its next heartbeat. A running job whose file has not been rewritten for JOB_STALE_S was lost
with its instance.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from pixelmcp.errors import Busy, InvalidArgument, PixelError

logger = logging.getLogger(__name__)

Status = Literal["queued", "downloading", "loading", "running", "completed", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

#: The job a tool call runs as, for the code inside it (progress reports record into it).
current_job: ContextVar[JobRecord | None] = ContextVar("pixelmcp_current_job", default=None)

_AHEAD = re.compile(r"(\d+) ahead")
_PERCENT = re.compile(r"\((\d+)%\)")
_ID = re.compile(r"^[A-Za-z0-9_-]{16}$")
#: How often a running job's file is rewritten (and a cancel from another instance looked for).
JOB_HEARTBEAT_S = 2.0
#: A running job's file older than this belongs to an instance that has stopped.
JOB_STALE_S = 30.0


class JobInfo(BaseModel):
    """Where a job stands."""

    id: str = Field(description="pass it to check_job")
    tool: str
    status: Status = Field(description="queued, downloading, loading, running; then completed, failed or cancelled")
    progress: float | None = Field(description="0..1 of the current phase's steps, when it has steps")
    message: str | None = Field(description="what it is doing now, e.g. 'step 12/30' or 'loading sdxl'")
    queue_position: int | None = Field(None, description="requests ahead of it on the device, while queued")
    eta_s: float | None = Field(None, description="seconds left, estimated from the steps so far")
    elapsed_s: float
    created: str
    error: str | None = Field(None, description="why it failed")


class JobStatusResult(BaseModel):
    job: JobInfo


@dataclass(eq=False)
class JobRecord:
    id: str
    tool: str
    owner: str | None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    status: Status = "queued"
    progress: float | None = None
    message: str | None = None
    queue_position: int | None = None
    eta_s: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None  # the tool's answer as stored (a CallToolResult's JSON), once finished
    raised: BaseException | None = None  # a protocol error the call raised instead of answering
    detached: bool = False  # its call has returned: progress is recorded, no longer sent
    finished_at: float | None = None
    elsewhere: bool = False  # read from the file of another instance that runs it (it is not running here)
    done: anyio.Event = field(default_factory=anyio.Event)
    answer_now: anyio.Event = field(default_factory=anyio.Event)  # done, or a download began: no use waiting
    scope: anyio.CancelScope | None = None
    instance: str | None = None  # the instance that wrote it (records read from disk)
    _first_step: tuple[float, float] | None = None
    _stored_info: JobInfo | None = None

    def update(self, done: float, total: float | None, message: str | None) -> None:
        """Record a progress report: the phase it means, the fraction done, an ETA from the steps so far."""
        if self.status in FINISHED:
            return
        self.updated = time.time()
        if message:
            self.message = message
            self.status = _phase(message)
            ahead = _AHEAD.search(message)
            self.queue_position = int(ahead.group(1)) if ahead and self.status == "queued" else None
            share = _PERCENT.search(message)
            if self.status == "downloading":
                self.progress = int(share.group(1)) / 100 if share else None
                self.answer_now.set()  # a download takes minutes: the call answers with the job now
        if total:
            self.status = "running" if self.status == "queued" else self.status
            self.progress = min(1.0, done / total)
            now = time.monotonic()
            if self._first_step is None or done < self._first_step[1]:
                self._first_step = (now, done)
            elif done > self._first_step[1]:
                rate = (now - self._first_step[0]) / (done - self._first_step[1])
                self.eta_s = round(rate * (total - done), 1)

    def info(self) -> JobInfo:
        if self.elsewhere:
            return self._stored_info
        end = self.finished_at or time.time()
        return JobInfo(id=self.id, tool=self.tool, status=self.status, progress=self.progress, message=self.message,
                       queue_position=self.queue_position, eta_s=self.eta_s if self.status == "running" else None,
                       elapsed_s=round(end - self.created, 1), created=iso_time(self.created), error=self.error)

    def cancel(self) -> None:
        """Stop the job: queued, it leaves the queue; running, it stops at the next step (engine/queue.py)."""
        if self.scope is not None and not self.done.is_set():
            self.scope.cancel()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def stored(cls, data: dict[str, Any], mtime: float) -> JobRecord:
        """The record another process wrote (JobBoard._write): finished, or running on another instance."""
        info = JobInfo.model_validate(data["job"])
        record = cls(id=info.id, tool=info.tool, owner=data.get("owner"), status=info.status, progress=info.progress,
                     message=info.message, queue_position=info.queue_position, eta_s=info.eta_s, error=info.error,
                     result=data.get("result"), detached=True, updated=mtime, elsewhere=True)
        record._stored_info = info
        record.instance = data.get("instance")
        if record.finished:
            record.done.set()
        return record


def _phase(message: str) -> Status:
    """The job status a progress message means (the engine's messages: engine/queue.py, engine/pool.py)."""
    if message.startswith("waiting for the device"):
        return "queued"
    if message.startswith("downloading"):
        return "downloading"
    if message.startswith(("loading ", "moving ")):
        return "loading"
    return "running"


def owner_of(headers: Any) -> str | None:
    """Who may collect a call's job: a digest of its Authorization header, or None (stdio, token-less HTTP)."""
    value = headers.get("authorization") if headers is not None else None
    return hashlib.sha256(value.encode()).hexdigest() if value else None


class JobBoard:
    """The jobs of this server: in memory while it runs, on disk from the moment they leave their call."""

    def __init__(self, folder: Path, max_jobs: int, retention_s: float):
        self.folder = folder
        self.max_jobs = max_jobs
        self.retention_s = retention_s
        self.instance = secrets.token_hex(6)  # tells this server's job files from other instances'
        self._jobs: dict[str, JobRecord] = {}

    # ------------------------------------------------------------------ lifecycle

    def open(self, tool: str, owner: str | None) -> JobRecord:
        """A record for a call that may become a job; refused when the server already holds max_jobs jobs."""
        self.sweep()
        if len(self._jobs) >= self.max_jobs:
            finished = [r for r in self._jobs.values() if r.status in FINISHED]
            if not finished:
                raise Busy(f"The server is already running {len(self._jobs)} jobs (PIXELMCP_MAX_JOBS={self.max_jobs}). "
                           "Wait for some to finish (check_job), cancel one (check_job with cancel=true), or raise "
                           "PIXELMCP_MAX_JOBS.")
            self._jobs.pop(min(finished, key=lambda r: r.finished_at or 0).id)  # its file stays collectable
        record = JobRecord(id=secrets.token_urlsafe(12), tool=tool, owner=owner)
        self._jobs[record.id] = record
        return record

    def close(self, record: JobRecord, result: dict[str, Any] | None = None, raised: BaseException | None = None,
              cancelled: bool = False) -> None:
        """The call's work ended (`result`: its answer as stored): keep it (a job) or forget it (answered within
        its call)."""
        record.finished_at = record.updated = time.time()
        record.result, record.raised = result, raised
        if cancelled:
            record.status = "cancelled"
        elif raised is not None or (result or {}).get("isError"):
            record.status = "failed"
            record.error = str(raised) if raised is not None else _text_of(result)
        else:
            record.status = "completed"
        record.done.set()
        record.answer_now.set()
        if record.detached:
            self._write(record)
            with contextlib.suppress(OSError):
                (self.folder / f"{record.id}.cancel").unlink(missing_ok=True)  # asked too late: nothing to stop

    def detach(self, record: JobRecord) -> None:
        """The call returns without the answer: the record becomes a job, collectable from now on."""
        record.detached = True
        self._write(record)

    def forget(self, record: JobRecord) -> None:
        self._jobs.pop(record.id, None)

    # ------------------------------------------------------------------ lookup

    def find(self, job_id: str, owner: str | None) -> JobRecord:
        """A job of this server process, or on disk: finished, or running on another instance that shares the
        output folder."""
        self.sweep()
        record = self._jobs.get(job_id)
        if record is not None and record.detached and record.owner == owner:
            return record
        stored = self._read(job_id) if record is None else None
        if stored is not None and stored.owner == owner:
            if not stored.finished and not self._running_elsewhere(stored):
                raise PixelError(f"Job {job_id!r} was running in a server process that has since stopped, so its work "
                                 f"was lost. Call {stored.tool} again.")
            return stored
        raise InvalidArgument("job_id", job_id, "is not a job of this server, or has expired (finished jobs are kept "
                                                f"{self.retention_s:g} s)",
                              "Pass the id a tool call returned; if it has expired, call the tool again.")

    async def wait(self, record: JobRecord, timeout_s: float | None) -> JobRecord:
        """The job once finished, or as it stands after `timeout_s` (None: no limit). A job another instance runs
        is followed through its file, which that instance rewrites every JOB_HEARTBEAT_S."""
        with anyio.move_on_after(timeout_s):
            if not record.elsewhere:
                await record.done.wait()
            while not record.finished:
                await anyio.sleep(JOB_HEARTBEAT_S / 2)
                record = self.find(record.id, record.owner)
        return record

    def _running_elsewhere(self, record: JobRecord) -> bool:
        """Another live instance runs it: its file is another instance's, and fresh."""
        return record.instance != self.instance and time.time() - record.updated < JOB_STALE_S

    def ask_to_cancel(self, job_id: str) -> None:
        """Ask the instance running a job to stop it (it looks at its next heartbeat)."""
        try:
            (self.folder / f"{job_id}.cancel").touch()
        except OSError as e:
            raise PixelError(f"Could not ask the server running job {job_id!r} to stop it: {e}.") from e

    def cancel_asked(self, record: JobRecord) -> bool:
        """Another instance asked to stop this job (the request is taken)."""
        marker = self.folder / f"{record.id}.cancel"
        if not marker.exists():
            return False
        with contextlib.suppress(OSError):
            marker.unlink()
        return True

    def post(self, record: JobRecord) -> None:
        """A running job's heartbeat: act on a cancel another instance asked for, else rewrite its file."""
        if self.cancel_asked(record):
            record.cancel()
        else:
            self._write(record)

    def sweep(self) -> None:
        """Forget finished jobs past their retention (in memory: files expire in _read and _sweep_disk)."""
        cutoff = time.time() - self.retention_s
        for record in [r for r in self._jobs.values() if r.finished_at is not None and r.finished_at < cutoff]:
            self._jobs.pop(record.id, None)

    def _sweep_disk(self) -> None:
        """Delete job files past their retention; run when a file is written, not on every call."""
        cutoff = time.time() - self.retention_s
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff and path.stem not in self._jobs:
                    path.unlink()

    # ------------------------------------------------------------------ disk

    def _write(self, record: JobRecord) -> None:
        data = {"owner": record.owner, "instance": self.instance, "job": record.info().model_dump(mode="json"),
                "result": record.result}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.folder / f".{record.id}.tmp"
            temporary.write_text(json.dumps(data), encoding="utf-8")
            temporary.replace(self.folder / f"{record.id}.json")
            self._sweep_disk()
        except OSError as e:  # the job still answers from memory while this process runs
            logger.warning("could not write job %s to %s: %s", record.id, self.folder, e)

    def _read(self, job_id: str) -> JobRecord | None:
        if not _ID.match(job_id):
            return None
        path = self.folder / f"{job_id}.json"
        try:
            mtime = path.stat().st_mtime
            if mtime < time.time() - self.retention_s:
                return None  # expired (deleted at the next write)
            return JobRecord.stored(json.loads(path.read_text(encoding="utf-8")), mtime)
        except (OSError, ValueError, KeyError):
            return None


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _text_of(result: dict[str, Any] | None) -> str | None:
    texts = [block["text"] for block in (result or {}).get("content", []) if block.get("type") == "text"]
    return " ".join(texts) or None
