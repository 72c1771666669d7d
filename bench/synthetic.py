"""Synthetic face templates that look like real ones, for benches at any size.

    python bench/synthetic.py [--model-dir DIR] [--faces 100000]

The model is fitted on the real templates of the clustering library (../shared/faces +
../shared/lfw-dev, every face; bench/cluster_quality.py computes and caches them):

* identity centres from a mixture over k groups (k-means of the real templates): centre =
  mu_k + a z, z ~ N(0, S_k) (or a multivariate t), S_k = the group's covariance less
  S_within (eigenvalues clipped at 0);
* a face = normalise(centre + e), e ~ N(0, b^2 S_w), S_w pooled over the labelled people
  with several photos (deviations from each person's mean);
* the scales a and b are set so that the medians of the synthetic impostor and genuine
  cosines equal the real ones (bisection; real impostors of this pack lie at 0.77-0.89,
  median ~0.84); k, the tail of the centres and an uneven noise scale per face are picked
  from a small grid by how close all the quantiles come.

People sizes follow a Zipf law (exponent 2: ~60% singletons, a few people with thousands of
faces, as in a family library); faces are grouped into photos (1-4 faces of different
people); quality scores are resampled from the real ones. Running the script prints the
real and synthetic genuine / impostor quantiles side by side.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cluster_quality import Library, load_library

QUANTILES = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999)


@dataclass(frozen=True)
class Model:
    """Fitted template model (see the module docstring)."""

    mean: np.ndarray  # K x D: the mean of each group of identities
    between: np.ndarray  # K x D x D factors: centre = mean[k] + between[k] @ z
    weights: np.ndarray  # K: share of identities in each group
    within: np.ndarray  # D x D factor: noise = within @ z
    quality: np.ndarray  # real quality scores to resample
    nu: float = np.inf  # centres: multivariate t with nu degrees of freedom (heavier tails)
    spread: float = 0.0  # faces: noise scale log-normal with this sigma (uneven photos)

    def centres(self, rng: np.random.Generator, n: int, a: float = 1.0) -> np.ndarray:
        d = self.mean.shape[1]
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        z = rng.standard_normal((n, d)) * _centre_scale(rng, self.nu, n)
        out = np.empty((n, d))
        for g in range(len(self.weights)):
            m = k == g
            out[m] = self.mean[g] + a * z[m] @ self.between[g].T
        return out


def _centre_scale(rng: np.random.Generator, nu: float, n: int) -> np.ndarray:
    if not np.isfinite(nu):
        return np.ones((n, 1))
    return np.sqrt(nu / rng.chisquare(nu, size=(n, 1)))


def _noise_scale(rng: np.random.Generator, spread: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.exp(spread * rng.standard_normal(shape) - spread**2 / 2)


@dataclass(frozen=True)
class Synthetic:
    keys: list[str]
    templates: np.ndarray
    photos: np.ndarray
    quality: np.ndarray
    person: np.ndarray


def _factor(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))).astype(np.float64)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def real_scores(lib: Library) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor cosines of the labelled faces."""
    idx = lib.labelled
    t = lib.templates[idx]
    s = t @ t.T
    i, j = np.triu_indices(len(idx), 1)
    same = lib.label[idx][i] == lib.label[idx][j]
    return s[i, j][same], s[i, j][~same]


def _scores(
    model: Model, a: float, b: float, n: int, per: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = model.mean.shape[1]
    centres = model.centres(rng, n, a)
    noise = rng.standard_normal((n, per, d)) * _noise_scale(rng, model.spread, (n, per, 1))
    faces = centres[:, None, :] + b * noise @ model.within.T
    f = _normalise(faces.reshape(n * per, d))
    s = f @ f.T
    i, j = np.triu_indices(len(f), 1)
    same = (i // per) == (j // per)
    return s[i, j][same], s[i, j][~same]


def _scaled(base: Model, want_gen: float, want_imp: float, seed: int) -> Model:
    """base with the scales that put the synthetic genuine and impostor medians on target."""
    a, b = 1.0, 1.0
    for _ in range(2):  # alternate: b sets the genuine median, a the impostor median
        lo, hi = 0.02, 5.0
        for _ in range(14):
            b = (lo + hi) / 2
            g, _i = _scores(base, a, b, 150, 4, seed)
            lo, hi = (b, hi) if np.median(g) > want_gen else (lo, b)
        lo, hi = 0.02, 5.0
        for _ in range(14):
            a = (lo + hi) / 2
            _g, im = _scores(base, a, b, 150, 4, seed)
            lo, hi = (a, hi) if np.median(im) > want_imp else (lo, a)
    return Model(base.mean, a * base.between, base.weights, b * base.within, base.quality,
                 base.nu, base.spread)  # fmt: skip


def _groups(
    t: np.ndarray, k: int, within: np.ndarray, seed: int
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """k-means (cosine) groups of the real templates: means, between-identity covariances
    (group covariance less the within-identity one) and shares."""
    rng = np.random.default_rng(seed)
    centres = t[rng.choice(len(t), size=k, replace=False)]
    for _ in range(25):
        g = np.argmax(t @ centres.T, axis=1)
        centres = np.stack([t[g == c].mean(0) if (g == c).any() else centres[c] for c in range(k)])
    covs = [np.cov(t[g == c].T) - within if (g == c).sum() > 2 else np.zeros_like(within)
            for c in range(k)]  # fmt: skip
    weights = np.bincount(g, minlength=k) / len(t)
    return centres, covs, weights


def fit(lib: Library, seed: int = 0) -> Model:
    """The model whose genuine and impostor quantiles (QUANTILES) are closest to the real
    ones, over a small grid of tail parameters (nu, spread)."""
    t = lib.templates.astype(np.float64)
    groups: dict[str, list[int]] = {}
    for i in lib.labelled.tolist():
        groups.setdefault(str(lib.label[i]), []).append(i)
    dev = np.concatenate([t[g] - t[g].mean(0) for g in groups.values() if len(g) > 1])
    dof = sum(len(g) - 1 for g in groups.values() if len(g) > 1)
    within = dev.T @ dev / dof
    gen, imp = real_scores(lib)
    want = np.concatenate([np.quantile(gen, QUANTILES), np.quantile(imp, QUANTILES)])
    best: tuple[float, Model] | None = None
    for k in (1, 4, 8):
        means, covs, weights = _groups(t, k, within, seed)
        between = np.stack([_factor(c) for c in covs])
        for nu, spread in ((np.inf, 0.0), (np.inf, 0.4), (6.0, 0.0), (6.0, 0.4)):
            base = Model(means, between, weights, _factor(within), lib.quality, nu, spread)
            m = _scaled(base, float(np.median(gen)), float(np.median(imp)), seed)
            g, im = _scores(m, 1.0, 1.0, 300, 4, seed + 1)
            got = np.concatenate([np.quantile(g, QUANTILES), np.quantile(im, QUANTILES)])
            err = float(np.abs(got - want).sum())
            if best is None or err < best[0]:
                best = (err, m)
    assert best is not None
    return best[1]


def sizes(n: int, rng: np.random.Generator, exponent: float = 2.0) -> np.ndarray:
    """People sizes summing to n: Zipf(exponent), capped at n // 20."""
    out: list[np.ndarray] = []
    total = 0
    while total < n:
        s = np.minimum(rng.zipf(exponent, size=max(1024, (n - total) // 2)), max(1, n // 20))
        out.append(s)
        total += int(s.sum())
    s = np.concatenate(out)
    s = s[: int(np.searchsorted(np.cumsum(s), n)) + 1]
    s[-1] -= int(s.sum()) - n
    return s[s > 0]


def draw(model: Model, n: int, seed: int = 0, chunk: int = 1 << 16) -> Synthetic:
    """n faces: templates (float32, L2-normalised), photo ids, qualities, true person."""
    rng = np.random.default_rng(seed)
    per = sizes(n, rng)
    person = np.repeat(np.arange(len(per)), per)
    d = model.mean.shape[1]
    centres = model.centres(rng, len(per)).astype(np.float32)
    templates = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        e = (rng.standard_normal((m, d)) * _noise_scale(rng, model.spread, (m, 1))) @ model.within.T
        templates[s : s + chunk] = _normalise(centres[person[s : s + chunk]] + e)
    # photos: shuffled faces taken 1-4 at a time, never two of one person in a photo
    order = rng.permutation(n)
    counts = rng.choice([1, 1, 1, 2, 2, 3, 4], size=n)
    counts = counts[: int(np.searchsorted(np.cumsum(counts), n)) + 1]
    chunk_of = np.repeat(np.arange(len(counts)), counts)[:n]
    photos = np.empty(n, dtype=np.int64)
    photos[order] = chunk_of
    who = person[order]
    clash = np.zeros(n, dtype=bool)
    for start in np.flatnonzero(np.r_[True, chunk_of[1:] != chunk_of[:-1]]).tolist():
        stop = start + int(counts[chunk_of[start]]) if start < n else start
        seen: set[int] = set()
        for j in range(start, min(stop, n)):
            clash[j] = int(who[j]) in seen
            seen.add(int(who[j]))
    photos[order[clash]] = len(counts) + np.arange(int(clash.sum()))  # alone in a photo
    quality = rng.choice(model.quality, size=n)
    keys = [hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).hexdigest() for i in range(n)]
    return Synthetic(keys, templates, photos, quality, person)


def compare(lib: Library, model: Model, seed: int = 1) -> None:
    """Real vs synthetic genuine / impostor cosine quantiles."""
    gen, imp = real_scores(lib)
    sg, si = _scores(model, 1.0, 1.0, 400, 4, seed)
    qs = (*QUANTILES, 0.9999, 0.99999)
    print("| quantile | genuine real | genuine synthetic | impostor real | impostor synthetic |")
    print("|---|---|---|---|---|")
    for qq in qs:
        print(f"| {qq:g} | {np.quantile(gen, qq):.4f} | {np.quantile(sg, qq):.4f} | "
              f"{np.quantile(imp, qq):.4f} | {np.quantile(si, qq):.4f} |")  # fmt: skip
    print(f"(real: {len(gen)} genuine, {len(imp):,} impostor pairs; synthetic: {len(sg)} "
          f"genuine, {len(si):,} impostor pairs of 400 people x 4 faces)")  # fmt: skip


def cached_model(lib: Library, seed: int = 0) -> Model:
    """fit(lib), cached in /tmp next to the library's templates."""
    from cluster_quality import CACHE

    h = hashlib.sha256(lib.templates.tobytes()).hexdigest()[:16]
    path = CACHE / f"synthetic-model-{h}-{seed}.npz"
    if path.exists():
        z = np.load(path)
        return Model(z["mean"], z["between"], z["weights"], z["within"], z["quality"],
                     float(z["nu"]), float(z["spread"]))  # fmt: skip
    m = fit(lib, seed)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, mean=m.mean, between=m.between, weights=m.weights, within=m.within,
             quality=m.quality, nu=m.nu, spread=m.spread)  # fmt: skip
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", default=str(Path("/work/shared/models/yunet")))
    parser.add_argument("--faces", type=int, default=100_000)
    args = parser.parse_args()
    lib = load_library(model_dir=args.model_dir)
    model = cached_model(lib)
    print(f"fitted: {len(model.weights)} groups of identities, centres t with nu={model.nu:g}, "
          f"face noise scale log-normal sigma {model.spread:g}")  # fmt: skip
    compare(lib, model)
    syn = draw(model, args.faces)
    counts = np.bincount(syn.person)
    print(f"\n{args.faces:,} synthetic faces: {len(counts):,} people, "
          f"{np.mean(counts == 1):.0%} of them singletons, largest {counts.max():,} faces, "
          f"{len(np.unique(syn.photos)):,} photos")  # fmt: skip


if __name__ == "__main__":
    main()
