"""The outputs of an evaluation: results.json, PNG plots and one self-contained HTML report."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def _scores(values: list[float | None]) -> np.ndarray:
    return np.array([-math.inf if v is None else v for v in values], dtype=np.float64)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def _grid(plt: Any, n: int) -> list[Any]:
    """Axes for n small plots, up to 3 a row; spare axes hidden."""
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return flat[:n]


def _bins(scores: np.ndarray) -> np.ndarray:
    lo = float(scores.min()) if len(scores) else 0.0
    return np.linspace(max(-1.0, lo - 0.02), 1.0, 41)


def verification_plots(results: dict[str, Any], out: Path) -> list[Path]:
    from faceprint.eval import metrics

    plt = _plt()
    conds = results["conditions"]
    fig_roc, ax_roc = plt.subplots(figsize=(6, 4.5))
    fig_det, ax_det = plt.subplots(figsize=(6, 4.5))
    for c in conds:
        s, y = _scores(c["data"]["scores"]), np.array(c["data"]["labels"], dtype=bool)
        curve = metrics.roc(s, y)
        floor = 0.5 / max(1, int((~y).sum()))
        ax_roc.plot(np.maximum(curve.fmr, floor), curve.tmr, label=c["condition"])
        # log axes: rates of 0 are drawn at half of one comparison
        fnmr = np.maximum(1 - curve.tmr, 0.5 / max(1, int(y.sum())))
        ax_det.plot(np.maximum(curve.fmr, floor), fnmr, label=c["condition"])
    ax_roc.set(
        xscale="log",
        xlabel="false match rate (log)",
        ylabel="true match rate",
        title="ROC",
        ylim=(0, 1.01),
    )
    ax_det.set(
        xscale="log",
        yscale="log",
        xlabel="false match rate",
        ylabel="false non-match rate",
        title="DET (log-log)",
    )
    for ax in (ax_roc, ax_det):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    paths = [_save(fig_roc, out / "roc.png"), _save(fig_det, out / "det.png")]
    axes = _grid(plt, len(conds))
    for ax, c in zip(axes, conds, strict=False):
        s, y = _scores(c["data"]["scores"]), np.array(c["data"]["labels"], dtype=bool)
        ok = np.isfinite(s)
        bins = _bins(s[ok])
        ax.hist(s[ok & ~y], bins=bins, alpha=0.6, density=True, label="impostor")
        ax.hist(s[ok & y], bins=bins, alpha=0.6, density=True, label="genuine")
        ax.set(title=c["condition"], xlabel="cosine similarity")
        ax.legend(fontsize=8)
    paths.append(_save(axes[0].figure, out / "scores.png"))
    return paths


def identification_plots(results: dict[str, Any], out: Path) -> list[Path]:
    plt = _plt()
    conds = results["conditions"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for c in conds:
        ranks = np.arange(1, len(c["cmc"]) + 1)
        ax.plot(ranks, c["cmc"], marker="o", markersize=3, label=c["condition"])
    ax.set(xlabel="rank", ylabel="identification rate", title="CMC", ylim=(0, 1.01))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    paths = [_save(fig, out / "cmc.png")]
    axes = _grid(plt, len(conds))
    for ax, c in zip(axes, conds, strict=False):
        mated = _scores(c["data"]["mated_scores"])
        non = _scores(c["data"]["nonmated_scores"])
        both = np.r_[mated, non]
        bins = _bins(both[np.isfinite(both)])
        ax.hist(non[np.isfinite(non)], bins=bins, alpha=0.6, density=True, label="non-mated")
        ax.hist(mated[np.isfinite(mated)], bins=bins, alpha=0.6, density=True, label="mated")
        ax.set(title=c["condition"], xlabel="top-1 cosine similarity")
        ax.legend(fontsize=8)
    paths.append(_save(axes[0].figure, out / "scores.png"))
    return paths


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{path.stem}" src="data:image/png;base64,{data}"></figure>'


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{100 * x:.2f}%" if pct else f"{x:.4f}"
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verification_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    conds = results["conditions"]
    fmrs = list(dict.fromkeys(k for c in conds for k in c["tar_at_fmr"]))
    header = ["condition", "accuracy (k-fold)", "AUC", "EER"]
    header += [f"TAR@FMR {f}" for f in fmrs] + ["no face", "several faces", "failed pairs"]
    rows = []
    for c in conds:
        row = [
            html.escape(c["condition"]),
            f"{_fmt(c['accuracy'], True)} ± {_fmt(c['accuracy_std'], True)}",
            _fmt(c["auc"]),
            _fmt(c["eer"], True),
        ]
        for f in fmrs:
            t = c["tar_at_fmr"].get(f)
            row.append("-" if t is None else _fmt(t["tar"], True) + ("" if t["resolved"] else "*"))
        rows.append(row + [str(len(c["no_face"])), _several(c), str(c["failed_pairs"])])
    return header, rows


def identification_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    conds = results["conditions"]
    fpirs = list(dict.fromkeys(k for c in conds for k in c["fnir_at_fpir"]))
    header = ["condition", "rank-1", "rank-5"] + [f"FNIR@FPIR {f}" for f in fpirs]
    header += ["no face", "several faces"]
    rows = []
    for c in conds:
        row = [html.escape(c["condition"]), _fmt(c["rank1"], True), _fmt(c["rank5"], True)]
        for f in fpirs:
            t = c["fnir_at_fpir"].get(f)
            row.append("-" if t is None else _fmt(t["fnir"], True) + ("" if t["resolved"] else "*"))
        rows.append(row + [str(len(c["no_face"])), _several(c)])
    return header, rows


DETECTION_HEADER = ["condition", "images with a face found", "images with several faces"]


def _several(condition: dict[str, Any]) -> str:
    return str(len(condition.get("several_faces", [])))


def detection_rows(results: dict[str, Any]) -> list[list[str]]:
    """Detection recall per condition: images with a face found, and with several."""
    images = int(results.get("counts", {}).get("images", 0))
    rows = []
    for c in results["conditions"]:
        if images:
            found = images - len(c["no_face"])
            rows.append([
                html.escape(c["condition"]), f"{found} of {images} ({_fmt(found / images, True)})",
                str(len(c.get("several_faces", []))),
            ])  # fmt: skip
    return rows


def write(results: dict[str, Any], out: Path) -> Path:
    """Write results.json, the plots and report.html into ``out``; returns the HTML path."""
    from faceprint.eval import slice_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=False))
    if results["protocol"] == "pairs":
        plots = verification_plots(results, out)
        header, rows = verification_table(results)
    else:
        plots = identification_plots(results, out)
        header, rows = identification_table(results)
    setup = [
        ["protocol", results["protocol"]],
        ["data", results["source"]],
        ["model pack", results["pack"]],
        ["detector", results["detector"]],
        ["no face found", results["on_no_face_policy"]],
        ["face used (several found)", results.get("subject_rule", "largest")],
        ["seed", str(results["seed"])],
        ["faceprint", results["faceprint"]],
        ["created", results["created"]],
    ]
    setup += [[k, str(v)] for k, v in results.get("counts", {}).items()]
    notes = []
    for c in results["conditions"]:
        notes += [f"{c['condition']}: {n}" for n in c["notes"]]
        if c["no_face"]:
            notes.append(f"{c['condition']}: no face found in {', '.join(c['no_face'])}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>faceprint evaluation: {html.escape(results["protocol"])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }} figure {{ margin: 1em 0; }}
.dets figure {{ display: inline-block; margin: 0.3em; }} td small {{ color: #555; }}
table.text td {{ text-align: left; }}
table.matrix {{ display: inline-table; margin-right: 1.5em; vertical-align: top; }}
</style></head><body>
<h1>faceprint evaluation: {html.escape(results["protocol"])}</h1>
<h2>Setup</h2>
{_table(["setting", "value"], [[html.escape(a), html.escape(b)] for a, b in setup])}
<h2>Figures</h2>
{_table(header, rows)}
<h2>Detection ({html.escape(results["detector"])})</h2>
{_table(DETECTION_HEADER, detection_rows(results))}
<p>* fewer comparisons than the rate needs (see notes): measured at rate 0.</p>
<h2>Notes</h2>
<ul>{"".join(f"<li>{html.escape(n)}</li>" for n in notes) or "<li>none</li>"}</ul>
<h2>Plots</h2>
{"".join(_img(p) for p in plots)}
{slice_report.section(results, out)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
