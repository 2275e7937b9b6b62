"""Batch restoration of files and folders (`irestore restore`): the jobs a run plans, the
threaded runner with its manifest and resume decisions, bounded queues, the quality meter and
the run report."""

from irestore.batch.jobs import FORMAT_SUFFIX, PROMPT_PRECEDENCE, Job, RestoreOptions, UsageError, plan_jobs
from irestore.batch.report import MANIFEST_NAME
from irestore.batch.runner import (
    Manifest,
    Summary,
    image_seed,
    resume_decisions,
    run_batch,
    summary_dict,
)

__all__ = [
    "FORMAT_SUFFIX",
    "MANIFEST_NAME",
    "PROMPT_PRECEDENCE",
    "Job",
    "Manifest",
    "RestoreOptions",
    "Summary",
    "UsageError",
    "image_seed",
    "plan_jobs",
    "resume_decisions",
    "run_batch",
    "summary_dict",
]
