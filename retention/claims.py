"""Singleton jobs across processes: the first to claim a job's period runs it, the others
stand by. A claim is a row in `job_claims` (primary key job + period), so it holds on both
stores and across hosts, and survives restarts (a restarted process does not run the day's
job again)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from queries.schema import job_claims


def claimant_name() -> str:
    """Who claims: the host, the process and one scheduler in it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Claim:
    job: str
    period: str
    claimed_by: str
    claimed_at: datetime


def claim(engine: Engine, job: str, period: str, who: str, now: datetime) -> Claim:
    """Claim `job` for `period` as `who`; the claim that holds (ours, or the one before)."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(job_claims).values(job=job, period=period, claimed_by=who,
                                                   claimed_at=now))
        return Claim(job, period, who, now)
    except IntegrityError:
        with engine.connect() as conn:
            row = conn.execute(select(job_claims).where(
                job_claims.c.job == job, job_claims.c.period == period)).one()
        return Claim(job, period, row.claimed_by, row.claimed_at)
