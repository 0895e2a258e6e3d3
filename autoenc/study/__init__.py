"""Studies: the whole lab as one resumable run of many trials (plan -> trials -> executors ->
runner), on this machine's cores, a GPU or a Ray cluster."""
from ..config import DenoiseConfig, StudyConfig, preset, study_from_dict
from .planner import Trial, by_priority, count_trials, plan, stack_groups
from .runner import (
           TIMING_COLUMNS,
           collect,
           error_headline,
           run_study,
           study_lock,
           trial_line,
)

__all__ = ["DenoiseConfig", "StudyConfig", "TIMING_COLUMNS", "Trial", "by_priority", "collect", "count_trials",
           "error_headline", "plan", "preset", "run_study", "stack_groups", "study_from_dict",
           "study_lock", "trial_line"]
