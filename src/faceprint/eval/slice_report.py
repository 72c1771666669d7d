"""The slices in the outputs: HTML tables, one DET curve per group, and a short text."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.eval.slices import RATIO_MIN_POSITIVES

#: Names of the rates per protocol: (false positive, false negative, positives, negatives).
RATES = {
    "pairs": ("fmr", "fnmr", "genuine", "impostor"),
    "identify": ("fpir", "fnir", "mated", "nonmated"),
}


def pct(x: float) -> str:
    """A rate as a percentage with two significant digits (0.0046 -> 0.46%)."""
    if x == 0:
        return "0%"
    s = np.format_float_positional(100 * x, precision=2, unique=True, fractional=False, trim="-")
    return f"{s}%"


def rate_text(r: dict[str, Any]) -> str:
    """``0.46% [0.13–1.7%] 2/433``, ``cannot be measured 0/50``, or ``-`` (none)."""
    count = f"{r['errors']}/{r['n']}"
    if r["n"] == 0:
        return "-"
    if r["rate"] is None:
        return f"cannot be measured {count}"
    lo, hi = r["ci95"]
    flag = "" if r.get("resolved", True) else "*"
    return f"{pct(r['rate'])}{flag} [{pct(lo)}–{pct(hi)}] {count}"


def _rate_cell(r: dict[str, Any]) -> str:
    if r["n"] == 0:
        none = str(r["note"]).removeprefix("cannot be measured: ")
        return f"-<br><small>{html.escape(none)}</small>"
    count = f"{r['errors']}/{r['n']}"
    if r["ci95"] is not None:
        count += f" · CI {pct(r['ci95'][0])}–{pct(r['ci95'][1])}"
    title = html.escape(r["note"] or "", quote=True)
    flag = "" if r.get("resolved", True) else "*"
    head = "<i>cannot be measured</i>" if r["rate"] is None else f"<b>{pct(r['rate'])}{flag}</b>"
    return f'<span title="{title}">{head}<br><small>{count}</small></span>'


def ratio_text(r: dict[str, Any]) -> str:
    if r["max"] is None:
        return "not measurable (fewer than two groups)"
    if r["ratio"] is None:
        return f"unbounded ({r['min']['group']} has 0)"
    if r["max"]["rate"] == 0:
        return "1 (no errors in any group)"
    return f"{r['ratio']:.3g} ({r['max']['group']} / {r['min']['group']})"


def _ratio_cell(r: dict[str, Any]) -> str:
    out = html.escape(ratio_text(r))
    if r["left_out"] and r["max"] is not None:
        out += f"<br><small>left out: {html.escape(', '.join(r['left_out']))}</small>"
    return out


def _in_group_cell(v: dict[str, Any], fn: str) -> str:
    if v["similarity"] is None:
        return f'<i title="{html.escape(str(v["note"]), quote=True)}">cannot be measured</i>'
    there = "" if v[fn] is None else f"<br><small>{fn.upper()} there {pct(v[fn])}</small>"
    return f"{v['similarity']:.4f}{there}"


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    from faceprint.eval.report import _table as plain

    table = plain(header, rows)
    return table.replace("<table>", f'<table class="{cls}">', 1) if cls else table


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def det_plots(results: dict[str, Any], out: Path) -> dict[tuple[str, str], Path]:
    """One DET plot per group of each attribute (first condition), the whole evaluation's
    curve drawn grey behind it and the pack thresholds marked; (attribute, group) -> PNG."""
    from faceprint.eval.report import _plt, _save

    cond = results["conditions"][0]
    sl = cond.get("slices")
    if not sl:
        return {}
    fp, fn, pos_name, neg_name = RATES[results["protocol"]]
    for old in out.glob("det-*-*.png"):
        old.unlink()  # plots of an earlier run's groups
    plt = _plt()
    whole = sl["all"]
    paths: dict[tuple[str, str], Path] = {}
    pack_ops = [op for op in sl["operating"] if op["source"] == "pack"]
    for a_i, attr in enumerate(sl["attributes"]):
        for g_i, g in enumerate(attr["groups"]):
            det = g.get("det")
            if det is None:
                continue
            fig, ax = plt.subplots(figsize=(3.6, 3.0))
            # one floor for every curve of the attribute: a rate of 0 is drawn at half of
            # one comparison of the whole evaluation
            x_floor = 0.5 / max(1, whole["negatives"] if whole else det["negatives"])
            y_floor = 0.5 / max(1, whole["positives"] if whole else det["positives"])
            if whole:
                ax.step(
                    np.maximum(whole["fp"], x_floor),
                    np.maximum(whole["fn"], y_floor),
                    where="post", color="0.7", linestyle="--", label="all",
                )  # fmt: skip
            ax.step(
                np.maximum(det["fp"], x_floor),
                np.maximum(det["fn"], y_floor),
                where="post", color="C0", label=str(g["group"]),
            )  # fmt: skip
            for k, op in enumerate(pack_ops):
                r = g["rates"][op["name"]]
                if r[fp]["n"] and r[fn]["n"]:
                    x = max(r[fp]["errors"] / r[fp]["n"], x_floor)
                    y = max(r[fn]["errors"] / r[fn]["n"], y_floor)
                    ax.plot(x, y, marker="os^v"[k % 4], color=f"C{k + 1}", linestyle="none",
                            label=op["name"])  # fmt: skip
            ax.set(
                xscale="log",
                yscale="log",
                xlim=(x_floor / 1.5, 1.5),
                ylim=(y_floor / 1.5, 1.5),
                xlabel=f"{fp.upper()} (log)",
                ylabel=f"{fn.upper()} (log)",
                title=f"{attr['attribute']}: {g['group']}\n{g[pos_name]} {pos_name}, "
                f"{g[neg_name]} {neg_name}",
            )
            ax.title.set_fontsize(9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6)
            name = f"det-{a_i}-{_slug(attr['attribute'])}-{g_i}-{_slug(str(g['group']))}.png"
            paths[(attr["attribute"], str(g["group"]))] = _save(fig, out / name)
    return paths


def _cols(attr: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cols = [(str(g["group"]), g) for g in attr["groups"]]  # headers: escaped by _table
    cols += [(" × ".join(c["groups"]), c) for c in attr["cross"]]
    return cols


def _attribute_html(
    attr: dict[str, Any], sl: dict[str, Any], protocol: str, plots: dict[tuple[str, str], Path]
) -> str:
    from faceprint.eval.report import _img

    fp, fn, pos_name, neg_name = RATES[protocol]
    kind = "labelled" if attr["source"] == "labels" else f"automatic: {attr.get('what', '')}"
    parts = [
        f"<h4>{html.escape(attr['attribute'])} <small>({html.escape(kind)})</small></h4>",
        f"<p>Rule: {html.escape(attr['rule'])}.",
    ]
    if attr["left_out"]:
        parts.append(f" {attr['left_out']} comparison(s) left out (a photo without a label).")
    targets = [
        f"{t:g}"
        for t in sl["targets"]
        if any(g["in_group_threshold"][f"{t:g}"]["similarity"] is not None for g in attr["groups"])
    ]
    unmeasured = [f"{t:g}" for t in sl["targets"] if f"{t:g}" not in targets]
    if unmeasured:
        need = max(g[neg_name] for g in attr["groups"]) if attr["groups"] else 0
        parts.append(
            f" No group has enough {neg_name} comparisons (at most {need}) for an in-group "
            f"threshold at {fp.upper()} {', '.join(unmeasured)}."
        )
    parts.append("</p>")
    header = ["group", "photos", pos_name, neg_name]
    header += [f"in-group threshold for {fp.upper()} {t}" for t in targets]
    rows = []
    for g in attr["groups"]:
        row = [html.escape(str(g["group"])), str(g["images"]), str(g[pos_name]), str(g[neg_name])]
        row += [_in_group_cell(g["in_group_threshold"][t], fn) for t in targets]
        rows.append(row)
    rows += [
        [html.escape(" × ".join(c["groups"])), "-", str(c[pos_name]), str(c[neg_name])]
        + ["-"] * len(targets)
        for c in attr["cross"]
    ]
    parts.append(_table(header, rows))
    cols = _cols(attr)
    for key in (fp, fn):
        header = [f"{key.upper()} at threshold"] + [c for c, _ in cols] + ["max / min"]
        rows = []
        for op in sl["operating"]:
            row = [html.escape(f"{op['name']} ({op['similarity']:.4f})")]
            row += [_rate_cell(block["rates"][op["name"]][key]) for _, block in cols]
            row.append(_ratio_cell(attr["ratios"][op["name"]][key]))
            rows.append(row)
        parts.append(_table(header, rows))
    matrix = attr.get(f"{fp}_matrix")
    if matrix:
        tables = []
        pack = {op["name"] for op in sl["operating"] if op["source"] == "pack"}
        for op_name, m in matrix["at"].items():  # the pack's thresholds (all in results.json)
            if op_name not in pack or all(v is None for row in m for v in row):
                continue
            header = [f"{fp.upper()} at {op_name}", *matrix["groups"]]
            rows = [
                [html.escape(g)]
                + ["<i>cannot be measured</i>" if v is None else pct(v) for v in m[i]]
                for i, g in enumerate(matrix["groups"])
            ]
            tables.append(_table(header, rows, "matrix"))
        if tables:
            parts.append(
                "<p>Group-pair matrix of the false-match rate (off the diagonal: impostor "
                "pairs across two groups, NIST's cross-demographic FMR):</p>"
            )
            parts.append("".join(tables))
    figs = [
        plots[(attr["attribute"], str(g["group"]))]
        for g in attr["groups"]
        if (attr["attribute"], str(g["group"])) in plots
    ]
    if figs:
        parts.append('<div class="dets">' + "".join(_img(p) for p in figs) + "</div>")
    missing = [str(g["group"]) for g in attr["groups"] if g.get("det") is None]
    if missing and plots:
        parts.append(
            f"<p>No DET curve for {html.escape(', '.join(missing))}: needs both "
            f"{pos_name} and {neg_name} comparisons.</p>"
        )
    return "".join(parts)


def section(results: dict[str, Any], out: Path) -> str:
    """The HTML of the slices (empty when the results have none)."""
    conds = [c for c in results["conditions"] if c.get("slices")]
    if not conds:
        return ""
    fp = RATES[results["protocol"]][0]
    plots = det_plots(results, out)
    sl0 = conds[0]["slices"]
    ops = [
        [html.escape(op["name"]), f"{op['similarity']:.4f}", html.escape(_op_what(op, fp))]
        for op in sl0["operating"]
    ]
    parts = [
        "<h2>Slices</h2>",
        "<p>Error rates per group at one global threshold (NIST's demographic evaluation): "
        "each rate with its count and 95% Wilson interval (CI). Over fewer than 1/target "
        "comparisons a false-positive rate of 0 cannot be measured, and a rate above 0 is "
        "marked * (it is above what the comparisons resolve). max / min is over the groups "
        "whose rate is measured (false-negative rates: groups of at least "
        f"{RATIO_MIN_POSITIVES} positives). DET curves: one per group, for the first "
        "condition, with the whole evaluation's curve in grey; a rate of 0 is drawn at the "
        "edge of the plot.</p>",
        _table(["threshold", "similarity", "what it is"], ops, "text"),
    ]
    groups = results.get("groups")
    if groups:
        unl = groups["unlabelled images"]
        parts.append(
            f"<p>Groups file {html.escape(groups['file'])}: attributes "
            f"{html.escape(', '.join(groups['attributes']))}; {groups['labelled images']} "
            f"photo(s) of this evaluation labelled, {len(unl)} not"
            + (
                f" ({html.escape(', '.join(unl[:10]))}{' …' if len(unl) > 10 else ''})"
                if unl
                else ""
            )
            + f"; {groups['rows not in this evaluation']} row(s) for other photos ignored.</p>"
        )
    for i, c in enumerate(conds):
        parts.append(f"<h3>Condition: {html.escape(c['condition'])}</h3>")
        for attr in c["slices"]["attributes"]:
            parts.append(
                _attribute_html(attr, c["slices"], results["protocol"], plots if i == 0 else {})
            )
    return "\n".join(parts)


def _op_what(op: dict[str, Any], fp: str) -> str:
    if op["source"] == "pack":
        return (
            f"the model pack's calibrated threshold for FMR {op['target']:g} (what faceprint "
            f"decides with)"
        )
    return (
        f"this evaluation's own threshold giving {fp.upper()} {op['target']:g} over all its "
        f"comparisons"
    )


def _ratio_short(r: dict[str, Any]) -> str:
    if r["max"] is None:
        return "-"
    if r["ratio"] is None:
        return f"unbounded ({r['min']['group']} 0)"
    if r["max"]["rate"] == 0:
        return "1 (no errors)"
    return f"{r['ratio']:.3g} ({r['max']['group']} / {r['min']['group']})"


def text(results: dict[str, Any]) -> list[str]:
    """The short version for the terminal: the first condition, at the pack thresholds."""
    conds = [c for c in results["conditions"] if c.get("slices")]
    if not conds:
        return []
    c = conds[0]
    sl = c["slices"]
    fp, fn, pos_name, neg_name = RATES[results["protocol"]]
    ops = [op for op in sl["operating"] if op["source"] == "pack"]
    lines = [
        f"slices ({c['condition']}): rates at the pack's calibrated thresholds "
        f"({fp.upper()}@0.01 = at the threshold for FMR 0.01), 95% Wilson intervals and "
        f"counts; * = fewer comparisons than 1/target; the report adds this evaluation's "
        f"own thresholds, in-group thresholds and DET curves"
    ]
    for attr in sl["attributes"]:
        lines.append(f"{attr['attribute']} ({attr['source']}: {attr['rule']}):")
        header = ["group", "photos", pos_name, neg_name]
        for op in ops:
            header += [f"{fp.upper()}@{op['target']:g}", f"{fn.upper()}@{op['target']:g}"]
        lines.append("\t".join(header))
        for block in [*attr["groups"], *attr["cross"]]:
            name = block.get("group") or " × ".join(block["groups"])
            row = [str(name), str(block.get("images", "-")), str(block[pos_name])]
            row.append(str(block[neg_name]))
            for op in ops:
                r = block["rates"][op["name"]]
                row += [rate_text(r[fp]), rate_text(r[fn])]
            lines.append("\t".join(row))
        if len(attr["groups"]) > 1:
            row = ["max/min", "", "", ""]
            for op in ops:
                row += [_ratio_short(attr["ratios"][op["name"]][k]) for k in (fp, fn)]
            lines.append("\t".join(row))
    return lines
