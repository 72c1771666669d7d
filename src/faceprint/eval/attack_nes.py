"""Score-only reconstruction: natural evolution strategies in a whitened eigenface space.

Each generation queries the current point and ``population`` antithetic perturbations
(``z + sigma * e`` and ``z - sigma * e``). Fitness is rank-based: candidates are ranked by
the similarity the service returned for the target, ties share their mean rank, so a score
rounded to 2 decimals still says which candidates were better whenever they differ. The
search gradient (centred ranks times perturbations) drives an Adam step. A generation whose
answers are all equal (rounded scores that do not move, or decision-only answers that are
all "nobody") gives no direction: the perturbation is widened until answers differ again.
Success is the service itself saying the target's name for a probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from faceprint.eval.attack_client import Answer

FloatArray = npt.NDArray[np.float64]
#: Ask the service about some points of the face space (in order): one answer each, None
#: for a point the service refused because the key's daily budget is used up.
Ask = Callable[[Sequence[FloatArray]], list[Answer | None]]
#: Fitness of an answer without a face, and of a face whose target score is not shown.
NO_FACE = -3.0
UNLISTED = -2.0


@dataclass(frozen=True)
class NesSettings:
    population: int = 20  # perturbations per generation (an even number: antithetic pairs)
    sigma: float = 0.5  # perturbation size, in standard deviations of the photos
    lr: float = 0.08  # Adam step size (whitened units per coordinate)
    clip: float = 3.0  # keep every coordinate within this many standard deviations
    widen: float = 1.5  # sigma multiplier after a generation without any ranking
    max_sigma: float = 1.0  # at most the photos' own spread: beyond it faces stop looking real

    def __post_init__(self) -> None:
        if self.population < 2 or self.population % 2:
            raise ValueError("population must be an even number of at least 2")
        if not (self.sigma > 0 and self.lr > 0 and self.clip > 0 and self.widen >= 1):
            raise ValueError("sigma, lr and clip must be positive and widen at least 1")
        if self.max_sigma < self.sigma:
            raise ValueError("max_sigma must be at least sigma")


@dataclass
class Reconstruction:
    """One target's reconstruction run."""

    target: str
    success: bool = False
    queries: int = 0  # answered queries until success (or all that were spent)
    start_score: float | None = None  # the first probe's (the mean face's) target score
    best_score: float | None = None
    stopped: str = "budget"  # success | budget | what the service refused (client's reason)
    no_face: int = 0
    generations: int = 0
    curve: list[tuple[int, float | None]] = field(default_factory=list)  # (queries, best)
    scores: list[float | None] = field(default_factory=list)  # each query's target score
    best_z: list[float] = field(default_factory=list)
    points: list[FloatArray] = field(default_factory=list)  # every probe (when kept)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("best_z")
        out.pop("points")
        return out


def fitness(answer: Answer, target: str, decision_only: bool) -> float:
    """What the attacker learns from one answer, as a number to rank by."""
    if not answer.face:
        return NO_FACE
    if answer.name == target:
        return 2.0  # above any cosine similarity: the service named the target
    if decision_only or answer.score is None:
        return UNLISTED if not decision_only else 0.0
    return float(answer.score)


def centred_ranks(values: Sequence[float]) -> FloatArray:
    """Ranks scaled to [-0.5, 0.5]; tied values share their mean rank (all tied: zeros)."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 2:
        return np.zeros(n)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=np.float64)
    for value in np.unique(v):
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks / (n - 1) - 0.5


class _Adam:
    def __init__(self, dim: int, lr: float) -> None:
        self.lr, self.t = lr, 0
        self.m, self.v = np.zeros(dim), np.zeros(dim)

    def step(self, grad: FloatArray) -> FloatArray:
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad * grad
        m_hat = self.m / (1 - 0.9**self.t)
        v_hat = self.v / (1 - 0.999**self.t)
        return np.asarray(self.lr * m_hat / (np.sqrt(v_hat) + 1e-8))


def reconstruct(
    ask: Ask,
    target: str,
    dim: int,
    budget: int,
    rng: np.random.Generator,
    *,
    settings: NesSettings | None = None,
    decision_only: bool = False,
    chunk: int = 2,
    start: FloatArray | None = None,
    keep_points: bool = False,
) -> Reconstruction:
    """Climb the target's similarity with at most ``budget`` answered queries.

    ``ask`` is called with ``chunk`` points at a time (sent concurrently); the run stops
    at the first probe the service names as ``target``.
    """
    s = settings or NesSettings()
    run = Reconstruction(target)
    z = np.zeros(dim) if start is None else np.asarray(start, dtype=np.float64).copy()
    adam = _Adam(dim, s.lr)
    sigma = s.sigma
    best = -math.inf
    best_z = z.copy()

    def query(points: list[FloatArray]) -> list[float] | None:
        """Fitness of each point (None once the run must stop)."""
        nonlocal best, best_z
        out: list[float] = []
        for i in range(0, len(points), chunk):
            part = points[i : i + chunk][: budget - run.queries]
            if not part:
                return None
            answers = ask(part)
            for p, a in zip(part, answers, strict=True):
                if a is None:  # refused: the chunk's other answers still count
                    run.stopped = "refused"
                    continue
                run.queries += 1
                run.no_face += not a.face
                run.scores.append(a.score)
                if keep_points:
                    run.points.append(p.copy())
                f = fitness(a, target, decision_only)
                if a.score is not None and run.start_score is None and run.queries == 1:
                    run.start_score = a.score
                if a.score is not None and (run.best_score is None or a.score > run.best_score):
                    run.best_score = a.score
                if f > best:
                    best, best_z = f, p.copy()
                if a.face and a.name == target:
                    run.success, run.stopped = True, "success"
                    return None
                out.append(f)
            if run.stopped == "refused":
                return None
        return out

    while run.queries < budget:
        half = rng.standard_normal((s.population // 2, dim))
        noise = np.concatenate([half, -half])
        points = [z.copy()] + [np.clip(z + sigma * e, -s.clip, s.clip) for e in noise]
        scores = query(points)
        run.generations += 1
        run.curve.append((run.queries, run.best_score))
        if scores is None or len(scores) < len(points):
            break
        u = centred_ranks(scores[1:])
        if not np.any(u):
            sigma = min(s.max_sigma, sigma * s.widen)
            continue
        grad = (u[:, None] * noise).sum(axis=0) / (len(u) * sigma)
        z = np.clip(z + adam.step(grad), -s.clip, s.clip)
        sigma = max(s.sigma, sigma / s.widen)
    run.best_z = [float(v) for v in best_z]
    return run
