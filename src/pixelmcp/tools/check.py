"""check_job: a long call's job, collected: its tool's complete result once done, else where it stands."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp_types import CallToolResult
from pydantic import Field

from pixelmcp.errors import InvalidArgument
from pixelmcp.tools import jobs
from pixelmcp.tools.arguments import OptionalNumber
from pixelmcp.tools.jobs import (
    FINISHED,
    JobRecord,
    info_of,
    owner_of,
    status_result,
    stored_answer,
)
from pixelmcp.tools.state import AppContext, app_state


async def check_job(
    job_id: Annotated[str, Field(description="A result's job.id.")],
    ctx: AppContext,
    wait_s: Annotated[
        OptionalNumber,
        Field(description="Seconds to wait before answering with its status; default and most: the call budget."),
    ] = None,
    cancel: Annotated[bool, Field(description="Stop the job; nothing of it is kept.")] = False,
) -> CallToolResult:
    """Collect a job a slow tool call answered with: the tool's own result once done, else its status and
    progress after up to wait_s. cancel=true stops it."""
    app = app_state(ctx)
    budget = app.settings.call_budget_s
    if wait_s is not None and (wait_s < 0 or (budget and wait_s > budget)):  # (OptionalNumber refused NaN)
        limit = f"0..{budget:g}" if budget else "0 or more"
        raise InvalidArgument("wait_s", wait_s, f"out of range; accepted: {limit} seconds (the call budget, "
                              "PIXELMCP_CALL_BUDGET_S, bounds every call)",
                              "Pass a smaller wait_s, or omit it to wait as long as a call may.")
    job_id, owner = job_id.strip(), owner_of(ctx.headers)
    found = app.jobs.find(job_id, owner)
    if not isinstance(found, JobRecord):  # what its file says: finished earlier, or running on another instance
        if found["job"]["status"] in FINISHED:
            return stored_answer(found)
        if cancel:
            app.jobs.ask_to_cancel(job_id)
            return status_result(info_of(found), note="Another instance of this server runs it and was asked to "
                                                      "stop it; call check_job again to see it cancelled.")
        with anyio.move_on_after(wait_s if wait_s is not None else (budget or None)):
            while found["job"]["status"] not in FINISHED:
                await anyio.sleep(jobs.JOB_HEARTBEAT_S / 2)
                found = app.jobs.find(job_id, owner)
        return stored_answer(found)
    if cancel:
        if found.status in FINISHED:
            return status_result(found.info(), note="It had already finished, so nothing was cancelled; call "
                                                    "check_job without cancel to get its result.")
        jobs.cancel(found)
        with anyio.move_on_after(budget or None):
            await found.done.wait()
        return status_result(found.info())
    with anyio.move_on_after(wait_s if wait_s is not None else (budget or None)):
        await found.done.wait()
    if found.done.is_set() and found.result is not None:
        return found.result
    return status_result(found.info())
