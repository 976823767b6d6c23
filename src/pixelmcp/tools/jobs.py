"""Long work is never lost to a client's timeout: a tool call blocks at most PIXELMCP_CALL_BUDGET_S; work
that takes longer goes on as a job, which `check_job` (or the `pixelmcp://jobs/{id}` resource) reports and
finally answers with the tool's own complete result.

A job is the whole tool call (argument checks, rewrite, generation, storing), run in the server's
background task group from the start, so nothing is redone when it outlives the call. The call
waits for it up to the budget: a call that finishes in time returns its normal result and leaves
no job behind. Progress goes to the calling client while its call is open, and into the job's
status always.

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
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from pixelmcp.errors import Busy, InvalidArgument, PixelError

logger = logging.getLogger(__name__)

#: The tools whose calls may outlive the budget (every tool that runs a model).
SLOW_TOOLS = frozenset({"generate_image", "rewrite_prompt", "controlnet_generate", "style_transfer",
                        "classify_image", "ask_about_image", "compare_images", "edit_image", "extend_image",
                        "upscale_image", "remove_background"})

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
    result: Any = None  # the tool's CallToolResult (or InputRequiredResult), once finished
    raised: BaseException | None = None  # a protocol error the call raised instead of answering
    detached: bool = False  # its call has returned: progress is recorded, no longer sent
    finished_at: float | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    answer_now: anyio.Event = field(default_factory=anyio.Event)  # done, or a download began: no use waiting
    scope: anyio.CancelScope | None = None
    _first_step: tuple[float, float] | None = None

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
        end = self.finished_at or time.time()
        return JobInfo(id=self.id, tool=self.tool, status=self.status, progress=self.progress, message=self.message,
                       queue_position=self.queue_position, eta_s=self.eta_s if self.status == "running" else None,
                       elapsed_s=round(end - self.created, 1), created=iso_time(self.created), error=self.error)


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

    def close(self, record: JobRecord, result: Any = None, raised: BaseException | None = None,
              cancelled: bool = False) -> None:
        """The call's work ended: keep its answer (a job) or forget it (answered within its call)."""
        record.finished_at = record.updated = time.time()
        record.result, record.raised = result, raised
        if cancelled:
            record.status = "cancelled"
        elif raised is not None or getattr(result, "is_error", False):
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

    def find(self, job_id: str, owner: str | None) -> JobRecord | dict:
        """A job of this server process (its record), or on disk (its stored form): finished, or running on another
        instance that shares the output folder."""
        self.sweep()
        record = self._jobs.get(job_id)
        if record is not None and record.detached and record.owner == owner:
            return record
        stored = self._read(job_id) if record is None else None
        if stored is not None and stored.get("owner") == owner:
            if stored["job"]["status"] not in FINISHED and not self._running_elsewhere(job_id, stored):
                raise PixelError(f"Job {job_id!r} was running in a server process that has since stopped, so its work "
                                 f"was lost. Call {stored['job']['tool']} again.")
            return stored
        raise InvalidArgument("job_id", job_id, "is not a job of this server, or has expired (finished jobs are kept "
                                                f"{self.retention_s:g} s)",
                              "Pass the id a tool call returned; if it has expired, call the tool again.")

    def _running_elsewhere(self, job_id: str, stored: dict) -> bool:
        """Another live instance runs it: its file is another instance's, and fresh."""
        try:
            age = time.time() - (self.folder / f"{job_id}.json").stat().st_mtime
        except OSError:
            return False
        return stored.get("instance") != self.instance and age < JOB_STALE_S

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
            cancel(record)
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
                "result": record.result.model_dump(mode="json", by_alias=True, exclude_none=True)
                if isinstance(record.result, CallToolResult) else None}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.folder / f".{record.id}.tmp"
            temporary.write_text(json.dumps(data), encoding="utf-8")
            temporary.replace(self.folder / f"{record.id}.json")
            self._sweep_disk()
        except OSError as e:  # the job still answers from memory while this process runs
            logger.warning("could not write job %s to %s: %s", record.id, self.folder, e)

    def _read(self, job_id: str) -> dict | None:
        if not _ID.match(job_id):
            return None
        path = self.folder / f"{job_id}.json"
        try:
            if path.stat().st_mtime < time.time() - self.retention_s:
                return None  # expired (deleted at the next write)
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


# --------------------------------------------------------------------------- the budget


async def within_budget(board: JobBoard, tasks: Any, budget_s: float, tool: str, owner: str | None,
                        call: Callable[[], Awaitable[Any]],
                        handle: Callable[[JobRecord], Any] | None = None) -> Any:
    """Run a tool call; if it is not done within `budget_s`, answer with a job and let it go on in `tasks`.

    The answer is the job's status, or `handle(record)` (a task handle, for a client of the Tasks
    extension). A call the client cancels cancels its work too. A protocol error the call raises
    within the budget is raised as it would have been.
    """
    if tool not in SLOW_TOOLS or not budget_s or tasks is None:
        return await call()
    try:
        record = board.open(tool, owner)
    except PixelError as e:
        return CallToolResult(content=[TextContent(type="text", text=str(e))], is_error=True)

    async def work() -> None:
        current_job.set(record)
        with anyio.CancelScope() as scope:
            record.scope = scope
            try:
                result = await call()
            except Exception as e:  # noqa: BLE001 (a protocol error: re-raised by the waiting call, or kept)
                board.close(record, raised=e)
                return
            board.close(record, result=result)
        if scope.cancelled_caught:
            board.close(record, cancelled=True)

    async def keep_posted() -> None:
        """While the job runs past its call, other instances sharing the output folder see where it stands."""
        while not record.done.is_set():
            with anyio.move_on_after(JOB_HEARTBEAT_S):
                await record.done.wait()
            if record.detached and not record.done.is_set():
                board.post(record)

    tasks.start_soon(work)
    tasks.start_soon(keep_posted)
    try:
        with anyio.move_on_after(budget_s):
            await record.answer_now.wait()
    except anyio.get_cancelled_exc_class():
        cancel(record)  # the client gave up on its call: the work stops too
        board.forget(record)
        raise
    if not record.done.is_set():
        board.detach(record)
        return handle(record) if handle is not None else status_result(record.info(), waited=True)
    board.forget(record)
    if record.raised is not None:
        raise record.raised
    return record.result


def cancel(record: JobRecord) -> None:
    """Stop a job: queued, it leaves the queue; running, it stops at the next step (engine/queue.py)."""
    if record.scope is not None and not record.done.is_set():
        record.scope.cancel()


def status_result(info: JobInfo, *, waited: bool = False, note: str | None = None) -> CallToolResult:
    """The answer for a job that is not done (or ended without a result): its status, and what to do next."""
    what = f"{info.tool} job {info.id} is {info.status}"
    if info.message and info.status not in FINISHED:
        what += f" ({info.message}" + (f", about {info.eta_s:g} s left" if info.eta_s is not None else "") + ")"
    if info.status in FINISHED:
        text = f"{what}." + (f" {info.error}" if info.error else "")
    else:
        why = " after the time a call may take" if waited and info.status != "downloading" else ""
        text = f"{what}. It is still working{why}: call check_job with job_id='{info.id}' to get its result."
    if note:
        text += f" {note}"
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=JobStatusResult(job=info).model_dump(mode="json"))


def info_of(found: JobRecord | dict) -> JobInfo:
    """Where a job stands: a live record's, or what a finished job left on disk (JobBoard.find)."""
    return found.info() if isinstance(found, JobRecord) else JobInfo.model_validate(found["job"])


def stored_answer(stored: dict) -> CallToolResult:
    """A finished job read back from disk: its tool's result, or its status."""
    if stored.get("result") is not None:
        return CallToolResult.model_validate(stored["result"])
    return status_result(info_of(stored))


def job_schema(result_schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's published output schema that also admits the job status a call past its budget returns."""
    job = JobStatusResult.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**result_schema.get("$defs", {}), **job.pop("$defs", {})}
    result = {k: v for k, v in result_schema.items() if k != "$defs"}
    return {"type": "object", "anyOf": [result, job], "$defs": defs}


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _text_of(result: Any) -> str | None:
    texts = [block.text for block in getattr(result, "content", []) if isinstance(block, TextContent)]
    return " ".join(texts) or None
