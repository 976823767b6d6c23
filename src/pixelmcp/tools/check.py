"""check_job: a long call's job, collected: its tool's complete result once done, else where it stands."""

from __future__ import annotations

from typing import Annotated

from mcp_types import CallToolResult, TextContent
from pydantic import Field

from pixelmcp.errors import InvalidArgument
from pixelmcp.service.jobs import FINISHED, JobInfo, JobRecord, JobStatusResult, owner_of
from pixelmcp.tools.arguments import number
from pixelmcp.tools.context import AppContext, app_state


async def check_job(
    job_id: Annotated[str, Field(description="A result's job.id.")],
    ctx: AppContext,
    wait_s: Annotated[
        number(0) | None,
        Field(description="Seconds to wait before answering with its status; default and most: the call budget."),
    ] = None,
    cancel: Annotated[bool, Field(description="Stop the job; nothing of it is kept.")] = False,
) -> CallToolResult:
    """Collect a job a slow tool call answered with: the tool's own result once done, else its status and
    progress after up to wait_s. cancel=true stops it."""
    app = app_state(ctx)
    budget = app.settings.call_budget_s
    if wait_s is not None and budget and wait_s > budget:  # (the schema refused NaN and negative waits)
        limit = f"0..{budget:g}" if budget else "0 or more"
        raise InvalidArgument("wait_s", wait_s, f"out of range; accepted: {limit} seconds (the call budget, "
                              "PIXELMCP_CALL_BUDGET_S, bounds every call)",
                              "Pass a smaller wait_s, or omit it to wait as long as a call may.")
    record = app.jobs.find(job_id.strip(), owner_of(ctx.headers))
    if cancel:
        if record.finished:
            return status_result(record.info(), note="It had already finished, so nothing was cancelled; call "
                                                     "check_job without cancel to get its result.")
        if record.elsewhere:
            app.jobs.ask_to_cancel(record.id)
            return status_result(record.info(), note="Another instance of this server runs it and was asked to "
                                                     "stop it; call check_job again to see it cancelled.")
        record.cancel()
        return status_result((await app.jobs.wait(record, budget or None)).info())
    record = await app.jobs.wait(record, wait_s if wait_s is not None else (budget or None))
    return answer_of(record)


def answer_of(record: JobRecord) -> CallToolResult:
    """A job's answer: its tool's result once it has one, else its status."""
    if record.finished and record.result is not None:
        return CallToolResult.model_validate(record.result)
    return status_result(record.info())


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
