"""`lssvwm report` from real `lssvwm eval memory` outputs and a horizon benchmark file; the horizon plot."""

from __future__ import annotations

import json
import re

import imageio.v3 as iio
import pytest
import torch

from lssvwm_env.checkpoint import save_world_model
from lssvwm_env.cli import main as lssvwm
from lssvwm_env.evaluation.memory import below_yardsticks
from lssvwm_env.evaluation.plots import plot_horizon
from lssvwm_env.models.world_model import WorldModel
from lssvwm_env.presets import tiny


# The shape `lssvwm bench horizon --json` prints (lssvwm_env/bench.py), with figures of a tiny-preset run.
HORIZON = {
    "ours": {"latency_ms": {"10": 24.9, "100": 27.4, "1000": 25.2}, "peak_mem_mb": {"10": 255.8, "100": 259.3, "1000": 259.8},
             "state_mb": {"10": 0.164, "100": 0.164, "1000": 0.164}, "history": {"10": "real", "100": "real", "1000": "real"}},
    "causal_attn": {"latency_ms": {"10": 14.6, "100": 42.6, "1000": 251.8}, "peak_mem_mb": {"10": 326.5, "100": 342.7, "1000": 482.0},
                    "state_mb": {"10": 0.313, "100": 3.126, "1000": 31.258},
                    "history": {"10": "real", "100": "real", "1000": "synthetic"}},
}


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    root = tmp_path_factory.mktemp("evals")
    data = root / "mg"
    assert lssvwm(["collect", "--env", "minigrid-fourrooms", "--policy", "retrace", "--episodes", "3", "--steps", "40",
                   "--out", str(data), "--seed", "5", "--quiet"]) == 0
    torch.manual_seed(1)
    config = tiny().model
    config.backbone.action.n = 7
    checkpoint = save_world_model(WorldModel(config), root / "ckpt")
    outs = {}
    for task in ("retrieval", "reasoning"):
        outs[task] = root / task
        assert lssvwm(["eval", "memory", "--checkpoint", str(checkpoint), "--data", str(data), "--task", task,
                       "--context", "16", "--generate", "12", "--episodes", "2", "--split", "train", "--videos", "1",
                       "--sampling-steps", "1", "--threads", "1", "--out", str(outs[task])]) == 0
    horizon = root / "horizon.json"
    horizon.write_text(json.dumps(HORIZON))
    agents = root / "results.md"
    agents.write_text("# Agents trained in the model\n\n## PPO\n\n| agent | real-env return |\n|---|---:|\n| PPO | 3.25 |\n")
    return outs, horizon, agents


def test_report_renders_every_input_with_its_numbers(evaluations, tmp_path, capsys):
    outs, horizon, agents = evaluations
    report_dir = tmp_path / "report"
    assert lssvwm(["report", str(outs["retrieval"]), str(outs["reasoning"]), str(horizon), str(agents),
                   "--out", str(report_dir)]) == 0
    assert f"wrote {report_dir / 'report.md'}" in capsys.readouterr().out
    text = (report_dir / "report.md").read_text()

    for task in ("retrieval", "reasoning"):
        m = json.loads((outs[task] / "metrics.json").read_text())
        assert f"**{m['ssim']:.3f}** | **{m['psnr']:.2f}**" in text  # the headline row
        assert f"{m['ceiling']['ssim']:.3f} / {m['ceiling']['psnr']:.2f}" in text
        memory = m["splits"]["memory"]
        assert f"| view shown in the context (memory) | {memory['frames']} |" in text
        mean = m["baselines"]["context_mean"]  # the yardsticks beside the model on the same frames
        assert f"| all | {m['psnr']:.2f} / {m['ssim']:.3f} | " in text and f"{mean['psnr']:.2f} / {mean['ssim']:.3f}" in text
        # A model below a yardstick is said so in the summary, not only in the table.
        summary = text[text.index("## Summary"):text.index("## Scale")]
        line = next(row for row in summary.splitlines() if row.startswith(f"- **{task.capitalize()}** (`{task}`"))
        assert ("**Below the" if below_yardsticks(m) else "Above every yardstick") in line
    # The paper's figures beside ours, and the scale said plainly.
    for figure in ("| 0.898 | 30.8 |", "| 0.829 | 26.4 |", "| 0.747 | 20.4 |", "| 0.855 | 28.2 |"):
        assert figure in text
    config = tiny().model
    config.backbone.action.n = 7
    parameters = sum(t.numel() for t in WorldModel(config).parameters())
    assert "not a replication of the paper's figures" in text and f"{parameters / 1e6:.2f} M" in text
    assert "LPIPS not computed" in text
    # The horizon figures, the included document with its headings nested under ours.
    assert "251.8 ms, 31.26 MB state (synthetic cache)" in text and "(10.0x the latency)" in text
    assert "## Agents trained in the model" in text and "### PPO" in text and "| PPO | 3.25 |" in text

    links = re.findall(r"\]\(([^)]+)\)", text)
    images = [link for link in links if link.endswith(".png")]
    assert len(images) == 2 * 3 + 1  # per evaluation: over time, vs gap, frames; and the horizon plot
    for link in links:
        assert (report_dir / link).is_file(), link
    for link in images:
        assert iio.imread(report_dir / link).shape[0] > 200
    assert sum(link.endswith(".mp4") for link in links) == 2


def test_report_refuses_what_it_cannot_read(evaluations, tmp_path, capsys):
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    assert lssvwm(["report", str(stray), "--out", str(tmp_path / "r")]) == 1
    assert "not a memory evaluation" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"ours": {"psnr": 1}}))
    assert lssvwm(["report", str(wrong), "--out", str(tmp_path / "r")]) == 1
    assert "lssvwm bench horizon --json" in capsys.readouterr().err
    assert not (tmp_path / "r" / "report.md").exists()


def test_horizon_plot(tmp_path):
    source = tmp_path / "horizon.json"
    source.write_text(json.dumps(HORIZON))
    png = plot_horizon(source, tmp_path / "horizon.png")
    image = iio.imread(png)
    assert image.shape[1] > 2 * image.shape[0] > 600  # three panels side by side
