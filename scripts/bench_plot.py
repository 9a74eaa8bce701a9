"""The PNG of scripts/bench: where the time of each turn goes, ours against the naive pipeline.

Top: the median of each stage, stacked, for both pipelines. Below: one Gantt row per turn
and pipeline, in seconds after the last speech sample of the question.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

# bar, from timestamp, to timestamp, colour
BARS = [
    ("end-of-turn wait", "speech_end", "end_of_turn", "#9e9e9e"),
    ("STT", "end_of_turn", "transcript_ready", "#1f77b4"),
    ("LLM to first sentence", "transcript_ready", "first_sentence", "#ff7f0e"),
    ("TTS to first audio", "first_sentence", "first_tts_audio", "#2ca02c"),
    ("to output", "first_tts_audio", "playback_start", "#d62728"),
    ("playback", "playback_start", "playback_end", "#c5b0d5"),
]
PIPELINES = [("ours", "ours"), ("naive", "naive sequential")]


def _segments(t: dict) -> list[tuple[float, float, str]]:
    """(start, width, colour) of each bar; the stages up to the first sound as a chain, like the bench counts them."""
    out, reached = [], t["speech_end"]
    for _label, _start, end, colour in BARS[:-1]:
        if end not in t:
            return out
        out.append((reached, max(0.0, t[end] - reached), colour))
        reached = max(reached, t[end])
    if "playback_end" in t:
        out.append((t["playback_start"], t["playback_end"] - t["playback_start"], BARS[-1][3]))
    return out


def _speculative(ax, t: dict, y: float) -> None:
    """Work done before the end-of-turn decision (speculatively, at a pause): hatched strips under the bar."""
    decided = t["end_of_turn"]
    for start, end, colour in ((t.get("speculated"), t["transcript_ready"], BARS[1][3]),
                               (t["transcript_ready"], t["first_sentence"], BARS[2][3])):
        if start is not None and start < decided:
            ax.broken_barh([(start, min(end, decided) - start)], (y + 0.2, 0.2),
                           facecolors="white", edgecolor=colour, hatch="////", linewidth=0.5)


def _summary(ax, doc: dict) -> None:
    """Stacked medians of the stages up to the first sound."""
    for row, (name, title) in enumerate(PIPELINES):
        stages = doc["stages"][name]
        left = 0.0
        for (_label, _s, _e, colour), key in zip(BARS[:5], ["end_of_turn", "stt", None, "tts_first_audio", "to_output"]):
            if key is None:  # the LLM bar spans two reported stages
                width = sum((stages[k]["p50_ms"] or 0) for k in ("llm_first_token", "first_sentence")) / 1000
            else:
                width = (stages[key]["p50_ms"] or 0) / 1000
            ax.barh(row, width, left=left, color=colour, height=0.6)
            left += width
        p50 = stages["response"]["p50_ms"]
        ax.text(left + 0.02, row, f"response p50 {p50:.0f} ms" if p50 else "no complete turn", va="center", fontsize=9)
    ax.set_yticks(range(len(PIPELINES)), [t for _n, t in PIPELINES])
    ax.invert_yaxis()
    ax.set_title("median of each stage (stacked; the sum of medians is not the median response)", fontsize=10)
    ax.set_xlabel("seconds after the end of the user's speech")


def _gantt(ax, doc: dict, xmax: float) -> None:
    rows = {name: {t["case"]: t for t in doc["timeline"][name]} for name, _t in PIPELINES}
    cases = [c["id"] for c in doc["cases"]]
    labels, y = [], 0.0
    for case in cases:
        for name, title in PIPELINES:
            t = rows[name].get(case)
            if t is not None:
                for start, width, colour in _segments(t):
                    ax.broken_barh([(start, width)], (y - 0.35, 0.55), facecolors=colour)
                _speculative(ax, t, y)
                ax.text(min(t["playback_start"], xmax) + 0.03, y, f"{t['playback_start'] * 1000:.0f}",
                        va="center", fontsize=7)
            labels.append((y, f"{case} · {name}" if t is not None else f"{case} · {name} (no reply)"))
            y += 1.0
        y += 0.5
    ax.set_yticks([p for p, _l in labels], [lab for _p, lab in labels], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-0.1, xmax)
    ax.set_xlabel("seconds after the last speech sample (numbers: response latency, ms)")
    ax.grid(axis="x", alpha=0.3)


def plot_timeline(doc: dict, path: Path) -> Path:
    """Write the figure of a bench result to `path` (PNG)."""
    starts = [t["playback_start"] for name, _ in PIPELINES for t in doc["timeline"].get(name, [])]
    xmax = (max(starts) if starts else 2.0) * 1.1 + 1.0
    n_rows = sum(len(doc["timeline"].get(name, [])) for name, _ in PIPELINES) + len(doc["cases"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 2.6 + 0.22 * n_rows),
                                      gridspec_kw={"height_ratios": [1.2, max(3.0, 0.22 * n_rows)]})
    _summary(top, doc)
    top.set_xlim(0, xmax)
    _gantt(bottom, doc, xmax)
    m = doc["machine"]
    fig.suptitle(f"voice assistant turn timeline — {m['cpu']}, {m['cores']} cores, load {m['load_avg_start'][0]:.1f}",
                 fontsize=11)
    handles = [Patch(color=c, label=label) for label, _s, _e, c in BARS]
    handles += [Patch(facecolor="white", edgecolor=c, hatch="////", label=f"{name} before the decision")
                for name, c in (("STT", BARS[1][3]), ("LLM", BARS[2][3]))]
    fig.legend(handles=handles, loc="lower center",
               ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
