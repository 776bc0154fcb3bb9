"""The GitHub Actions workflow runs the project's own commands, which exist."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "benchmarks.yml"


def steps(job):
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_pull_requests_run_ab_and_main_saves_a_baseline():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key "on" as True
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    ab, baseline = workflow["jobs"]["ab"], workflow["jobs"]["baseline"]
    assert 'scripts/ab.py --baseline "origin/${{ github.base_ref }}"' in steps(ab)
    assert ab["steps"][0]["with"]["fetch-depth"] == 0
    assert "scripts/baseline.py --root baseline calibrate --processes 10" in steps(baseline)
    assert "torch==2.13.0" in steps(ab) and "download.pytorch.org/whl/cpu" in steps(ab)


def test_pull_requests_and_baselines_count_instructions_with_valgrind_from_apt():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    for job in (jobs["ab"], jobs["baseline"]):
        run = steps(job)
        assert "apt-get install -y valgrind" in run
        assert run.index("apt-get install -y valgrind") < run.index("--instructions on")


def test_every_script_the_workflow_calls_exists():
    scripts = set(re.findall(r"python (scripts/[\w/]+\.py)", WORKFLOW.read_text()))
    assert scripts == {"scripts/ab.py", "scripts/baseline.py", "scripts/report.py", "scripts/publish.py"}
    assert all((REPO / script).is_file() for script in scripts)


def test_main_publishes_to_the_shared_history_only_when_its_secret_is_set():
    baseline = yaml.safe_load(WORKFLOW.read_text())["jobs"]["baseline"]
    assert baseline["env"]["LENET_DB_URL"] == "${{ secrets.LENET_DB_URL }}"
    [publish] = [step for step in baseline["steps"] if "scripts/publish.py" in step.get("run", "")]
    assert publish["if"] == "github.ref == 'refs/heads/main' && env.LENET_DB_URL != ''"
